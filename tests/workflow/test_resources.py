"""Cluster requests: every rule sizes its threads, memory and wall time; GPUs follow the device."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL_RULES = {
    "generate_answers",
    "train_adapter",
    "write_rationales",
    "write_repair_rationales",
    "judge_check",
    "judge_pairs",
    "classify_open_answers",
}


def rule_blocks():
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        text = smk.read_text()
        for match in re.finditer(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", text, flags=re.S | re.M):
            yield smk.name, match.group(1), match.group(2)


def test_every_rule_declares_threads_memory_and_runtime():
    rules = list(rule_blocks())
    assert len(rules) > 10
    for smk, name, body in rules:
        assert re.search(r"^    threads: ", body, flags=re.M), f"{smk}: rule {name} has no threads"
        resources = re.search(r"^    resources:\n((?:        .*\n)+)", body, flags=re.M)
        assert resources, f"{smk}: rule {name} has no resources"
        for key in ("mem_mb", "runtime"):
            assert f"        {key}=" in resources.group(1), f"{smk}: rule {name} has no {key}"


def planned(*args: str, env: dict | None = None) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job in a dry run."""
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", run.stdout + run.stderr):
        head = re.match(r"(?:local)?rule (\w+):\n", block)
        found = re.search(r"^    resources: (.*)$", block, flags=re.M)
        if head and found:
            pairs = (item.split("=", 1) for item in found.group(1).split(", "))
            jobs.append((head.group(1), dict(pairs)))
    assert jobs, run.stdout[-2000:]
    return jobs


@pytest.fixture(scope="module")
def smoke_jobs():
    return planned("--configfile", "config/smoke.yaml")


def test_every_job_gets_memory_and_runtime(smoke_jobs):
    for rule, resources in smoke_jobs:
        if rule == "all":
            continue
        assert int(resources["mem_mb"]) >= 1024, rule
        assert int(resources["runtime"]) >= 10, rule
        assert int(resources.get("gpu", 0)) == 0, rule  # device auto, no GPUs declared


def test_training_memory_is_the_measured_peak_with_headroom(smoke_jobs):
    train = [res for rule, res in smoke_jobs if rule == "train_adapter"]
    # smoke: 4 x 384 tokens per step measured at a 4.0 GB peak; twice that, rounded up.
    assert all(8000 <= int(res["mem_mb"]) <= 9000 for res in train), train


def test_declared_gpus_make_auto_model_jobs_ask_for_one():
    jobs = planned("--configfile", "config/smoke.yaml", "--resources", "gpu=2")
    by_rule = {}
    for rule, resources in jobs:
        by_rule.setdefault(rule, set()).add(int(resources.get("gpu", 0)))
    for rule in MODEL_RULES:
        assert by_rule[rule] == {1}, rule
    assert by_rule["pair_answers"] == {0}  # the scorer's device is cpu in config.yaml
    assert by_rule["score_binary"] == {0}


PAPER = ("--configfile", "config/paper.yaml")
PAPER_ENV = {"DEEPSEEK_API_KEY": "unused-in-a-dry-run"}


def test_paper_profile_puts_the_student_on_a_gpu_and_the_api_rules_under_llm_api():
    jobs = planned(*PAPER, env=PAPER_ENV)
    for rule, resources in jobs:
        if rule in ("generate_answers", "train_adapter"):
            assert resources["gpu"] == "1", rule
            assert int(resources["mem_mb"]) > 16 * 1024, rule  # 8B weights in bf16 pass through host RAM
        if rule in ("write_rationales", "judge_pairs", "classify_open_answers"):
            assert resources["llm_api"] == "1" and resources["gpu"] == "0", rule
    assert max(int(res["runtime"]) for rule, res in jobs if rule == "train_adapter") > 60


def student_memory(*args: str, env: dict | None = None) -> dict[str, int]:
    """The largest mem_mb of the student's training and generation jobs in a dry run."""
    jobs = planned(*args, env=env)
    return {rule: max(int(res["mem_mb"]) for r, res in jobs if r == rule) for rule in STUDENT_RULES}


STUDENT_RULES = ("train_adapter", "generate_answers")
# A hub student whose size the requests read from its name; a dry run downloads nothing.
HUB_STUDENT = "student={{model: Qwen/Qwen2.5-1.5B-Instruct, device: cpu, quantization: {}}}"
ONLINE = {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}


def test_a_4bit_student_asks_for_less_host_memory_on_a_cpu():
    """NF4 weights hold less host memory than fp32 ones (dtype auto on a CPU), measured."""
    smoke = ("--configfile", "config/smoke.yaml", "--config")
    nf4 = student_memory(*smoke, HUB_STUDENT.format("4bit"), env=ONLINE)
    full = student_memory(*smoke, HUB_STUDENT.format("none"), env=ONLINE)
    for rule in STUDENT_RULES:
        assert nf4[rule] < full[rule], (rule, nf4, full)


def test_a_4bit_student_on_a_gpu_asks_for_the_host_memory_of_bf16():
    """On a GPU job the bf16 checkpoint passes through host memory either way; NF4 saves GPU
    memory, which no request holds (rules/resources.smk)."""
    nf4 = student_memory(*PAPER, env=PAPER_ENV)  # paper.yaml's student: 4bit on cuda
    bf16 = student_memory(*PAPER, "--config", "student={quantization: none}", env=PAPER_ENV)
    assert nf4 == bf16


def test_a_profile_can_override_a_rule():
    jobs = planned("--configfile", "config/smoke.yaml", "--set-resources", "train_adapter:mem_mb=1234")
    assert {res["mem_mb"] for rule, res in jobs if rule == "train_adapter"} == {"1234"}


def planned_order(*args: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(rule, wildcards) -> (priority, threads) of every job in a dry run."""
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", run.stdout + run.stderr):
        head = re.match(r"(?:local)?rule (\w+):\n", block)
        if not head:
            continue
        keys = ("wildcards", "priority", "threads")
        field = {k: re.search(rf"^    {k}: (.*)$", block, flags=re.M) for k in keys}
        wildcards = field["wildcards"].group(1) if field["wildcards"] else ""
        priority = int(field["priority"].group(1)) if field["priority"] else 0
        threads = int(field["threads"].group(1)) if field["threads"] else 1  # printed when > 1
        jobs[(head.group(1), wildcards)] = (priority, threads)
    assert jobs, run.stdout[-2000:]
    return jobs


def test_on_two_local_cores_every_model_job_takes_one_and_the_control_chain_goes_first():
    jobs = planned_order("--cores", "2")
    assert all(threads == 1 for _, threads in jobs.values()), jobs
    prio = {key: p for key, (p, _) in jobs.items()}
    train = {w: p for (rule, w), p in prio.items() if rule == "train_adapter"}
    # The control arm's chain (its drift is planted, so it is always repaired) before the main arm's.
    assert train["model=m_int_planted"] > train["model=m_int"]
    assert prio[("audit_table", "model=m_int_planted")] > prio[("audit_table", "model=m_int")]
    # What a repair round waits on before what only the final tables read.
    gen = {w: p for (rule, w), p in prio.items() if rule == "generate_answers"}
    for model in ("m0", "m_int", "m_int_planted"):
        val, test = (gen[f"model={model}, split={split}, framing=binary"] for split in ("val", "test"))
        assert val > test, model
    # Every audit, the control's too, pairs with M0's audit replies.
    assert gen["model=m0, split=val, framing=binary"] > train["model=m_int"]
    assert prio[("judge_check", "")] > prio[("audit_table", "model=m_int")]
    # The Stage I rationales before anything that waits on them.
    assert prio[("write_rationales", "source=distill")] > max(train.values())
