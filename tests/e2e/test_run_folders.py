"""Runs you can trust, on the finished smoke run: each profile keeps its own folder, a changed
key re-plans exactly the jobs that read it, a missing input fails before any job starts, and
a corrupt cache file is set aside and rebuilt.

Every test here is a dry run, or works in a hard-linked copy of the finished run, so the
shared run (tests/conftest.py) is never changed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import SMOKE

pytestmark = pytest.mark.slow

RUN = "results/smoke"


def snakemake(workdir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)


def planned_jobs(run: subprocess.CompletedProcess) -> Counter:
    """Rule -> job count from a dry run's job table (empty when nothing is to be done)."""
    text = run.stdout + run.stderr
    if "Nothing to be done" in text:
        return Counter()
    table = text[text.index("Job stats:") :].splitlines()[3:]
    counts = Counter()
    for line in table:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


def dry_run_with(workdir: Path, name: str, overlay: str) -> subprocess.CompletedProcess:
    """A dry run of the smoke profile with one more overlay (both after one --configfile)."""
    (workdir / name).write_text(overlay)
    return snakemake(workdir, "-n", *SMOKE, name)


def linked_copy(source: Path, target: Path) -> Path:
    """The finished run, hard-linked: cheap, and deleting a file in it leaves the source alone."""
    shutil.copytree(source, target, copy_function=os.link, symlinks=True)
    return target


@pytest.fixture(scope="module")
def finished_run(smoke_run) -> Path:
    return smoke_run


# What each change must re-plan after the smoke run, rule by rule, and nothing else. The
# smoke run has 7 models: m0, m_int, m_dart, the two ablations (m_int_predlabel, m_joint)
# and the planted pair (m_int_planted, m_dart_planted); 6 are audited, the planted pair does
# not answer the open-domain queries (m0..m_joint answer 4 generation files, the pair 3).
TABLES = {"main_results": 1, "figures": 1, "all": 1}
REPAIRED = {  # what follows a changed audit of M_int and of the planted student
    "write_repair_rationales": 2,
    "build_repair_set": 2,
    "train_adapter": 2,
    "score_binary": 2,
    "score_mc": 2,
    "classify_open_answers": 1,
    "control_table": 1,
}
AUDITS = {"pair_answers": 6, "judge_pairs": 6, "audit_table": 6, "audit_summary": 6}
CHANGES = {
    # An ablation switched off: its jobs go, the tables and figures are redrawn without it;
    # the Stage I rationales of M_int are not touched (predicted_label is not theirs).
    "distill.predicted_label": ("distill:\n  predicted_label: false\n", TABLES),
    "joint.enabled": ("joint:\n  enabled: false\n", TABLES),
    # New check pairs change the judge's check result, which only the summaries and the
    # tables report: no audit table, so no repair and no retraining.
    "audit.check_set.extra": (
        "audit:\n  check_set:\n    extra: [resources/judge_check/pairs.jsonl]\n",
        {"judge_check": 1, "audit_summary": 6, **TABLES},
    ),
    # A new screen threshold re-screens every pair, so the repairs and their models follow.
    "audit.delta": (
        "audit:\n  delta: 0.02\n",
        {**AUDITS, **REPAIRED, "generate_answers": 4 + 3, **TABLES},
    ),
    # The explanation policy adds its five rows (M0, M_int, M_DART and the control's pair under the
    # policy): each answers the test split in both framings and the audit split; all but M0's are
    # audited against M0's under the same policy. Nothing already run is planned again.
    "evaluation.policy": (
        "evaluation:\n  policy: both\n",
        {
            "generate_answers": 5 * 3,
            "score_binary": 5,
            "score_mc": 5,
            **{rule: 4 for rule in AUDITS},
            **TABLES,
        },
    ),
    "open_domain.n_queries": (
        "open_domain:\n  n_queries: 6\n",
        {"write_open_queries": 1, "generate_answers": 5, "classify_open_answers": 5, **TABLES},
    ),
    # Every answer changes; the Stage I models and the check set keep theirs.
    "generation.temperature": (
        "generation:\n  temperature: 0.3\n",
        {
            **AUDITS,
            **REPAIRED,
            "generate_answers": 5 * 4 + 2 * 3,
            "score_binary": 7,
            "score_mc": 7,
            "classify_open_answers": 5,
            **TABLES,
        },
    ),
}


@pytest.mark.parametrize("key", list(CHANGES))
def test_a_changed_key_plans_exactly_the_jobs_that_read_it(finished_run, key):
    overlay, expected = CHANGES[key]
    dry = dry_run_with(finished_run, f"change-{key}.yaml", overlay)
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    assert planned_jobs(dry) == Counter(expected), key


def test_switching_on_the_ablations_plans_only_their_models(finished_run, tmp_path):
    """As after a run without the ablations: their files are gone, every other file stays."""
    copy = linked_copy(finished_run, tmp_path / "run")
    results = copy / RUN
    gone = [
        *results.glob("rationales/predlabel*"),
        results / "joint",
        *[
            results / part / model
            for part in ("adapters", "generate", "audit")
            for model in ("m_int_predlabel", "m_joint")
        ],
        *results.glob("open_domain/m_int_predlabel*"),
        *results.glob("open_domain/m_joint*"),
        *results.glob("tables/metrics_m_int_predlabel*"),
        *results.glob("tables/metrics_m_joint*"),
    ]
    for path in gone:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    dry = snakemake(copy, "-n", *SMOKE)
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    per_model = {"generate_answers": 4, "score_binary": 1, "score_mc": 1, "classify_open_answers": 1}
    per_model |= {"pair_answers": 1, "judge_pairs": 1, "audit_table": 1, "audit_summary": 1}
    expected = Counter({rule: 2 * n for rule, n in per_model.items()})
    expected.update({"write_rationales": 1, "joint_weights": 1, "train_adapter": 2, **TABLES})
    assert planned_jobs(dry) == expected
    outputs = re.findall(rf"output: ({RUN}/[^,\s]+)", dry.stdout + dry.stderr)
    new = ("m_int_predlabel", "m_joint", "predlabel", "joint")
    for path in outputs:
        assert any(name in path for name in new) or "/tables/" in path or "/figures/" in path, path


def test_profiles_keep_their_own_folders(finished_run):
    """The default profile, planned beside the finished smoke run: every job writes under
    results/default/ and none of the smoke run's files is planned again."""
    dry = snakemake(finished_run, "-n")
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-3000:]
    outputs = re.findall(r"output: (\S+?),?\s", dry.stdout + dry.stderr)
    assert outputs
    for path in outputs:
        assert path.startswith(("results/default/", "logs/default/", "benchmarks/default/")), path
    assert planned_jobs(dry)["write_splits"] == 1


@pytest.mark.parametrize(
    ("overlay", "key", "path"),
    [
        ("data:\n  dir: /data/nope\n", "data.dir", "/data/nope"),
        (
            "open_domain:\n  judge_prompt: config/prompts/nope.txt\n",
            "open_domain.judge_prompt",
            "config/prompts/nope.txt",
        ),
        ("audit:\n  check_set:\n    extra: [my_pairs.jsonl]\n", "audit.check_set.extra", "my_pairs.jsonl"),
    ],
)
def test_a_missing_input_fails_before_any_job_naming_key_and_path(finished_run, overlay, key, path):
    """Once results exist, a missing input used to be ignored ("Nothing to be done")."""
    for args in (["-n"], ["-n", "--forceall"]):
        (finished_run / "missing.yaml").write_text(overlay)
        run = snakemake(finished_run, *args, *SMOKE, "missing.yaml")
        text = run.stdout + run.stderr
        assert run.returncode != 0, text[-2000:]
        assert key in text and path in text, text[-2000:]


def test_a_bad_data_line_fails_before_the_splits_are_touched(finished_run, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(finished_run / "resources/difference_awareness", data)
    lines = (data / "N1.jsonl").read_text().splitlines()
    lines[6] = lines[6].replace('"condition"', '"kondition"', 1)
    (data / "N1.jsonl").write_text("\n".join(lines) + "\n")
    split = finished_run / RUN / "data/splits/train.jsonl"
    before = split.read_bytes()
    (finished_run / "bad_data.yaml").write_text(f"data:\n  dir: {data}\n")
    run = snakemake(finished_run, *SMOKE, "bad_data.yaml")
    text = run.stdout + run.stderr
    assert run.returncode != 0
    assert f"{data / 'N1.jsonl'}:7" in text and "data.dir" in text, text[-2000:]
    assert split.read_bytes() == before


def working_copy(source: Path, target: Path) -> Path:
    """A copy of the finished run that jobs may write into: every file copied, except the
    converted model's weights, which jobs only read and which are hard-linked."""

    def copy(src, dst):
        return os.link(src, dst) if f"{os.sep}models{os.sep}" in src else shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=copy, symlinks=True)
    return target


def test_a_corrupt_cache_file_is_set_aside_and_the_job_still_gives_the_same_result(finished_run, tmp_path):
    copy = working_copy(finished_run, tmp_path / "run")
    cache = copy / ".cache/harmdrift/toxicity.sqlite"
    cache.unlink()  # a new file, not the original's bytes rewritten in place
    cache.write_bytes(b"not a database " * 100)
    target = f"{RUN}/audit/m_int/pairs.jsonl"
    run = snakemake(copy, target, "--forcerun", "pair_answers", *SMOKE)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    log = (copy / "logs/smoke/audit/m_int/pairs.log").read_text()
    assert re.search(r"cache file \S*toxicity\.sqlite is damaged .* moved it aside", log), log
    (aside,) = cache.parent.glob("toxicity.sqlite.corrupt-*")
    assert aside.read_bytes() == b"not a database " * 100  # kept for inspection
    assert "Traceback" not in log
    assert (copy / target).read_bytes() == (finished_run / target).read_bytes()


def test_an_unset_api_key_fails_a_real_run_before_any_job(finished_run, tmp_path):
    """A dry run only warns (it sends no request); a real run stops before its first job."""
    copy = linked_copy(finished_run, tmp_path / "run")
    (copy / "api.yaml").write_text(
        "teacher:\n  backend: openai\n  model: some-model\n  base_url: http://127.0.0.1:9/v1\n"
        "  api_key_env: HARMDRIFT_TEST_UNSET_KEY\n"
    )
    env_free = {k: v for k, v in os.environ.items() if k != "HARMDRIFT_TEST_UNSET_KEY"}
    dry = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", *SMOKE, "api.yaml"],
        cwd=copy, capture_output=True, text=True, env=env_free, timeout=600,
    )  # fmt: skip
    assert dry.returncode == 0 and "warning: config key teacher.api_key_env" in dry.stderr, dry.stderr[-2000:]
    target = f"{RUN}/rationales/distill.jsonl"
    real = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", target, *SMOKE, "api.yaml"],
        cwd=copy, capture_output=True, text=True, env=env_free, timeout=600,
    )  # fmt: skip
    text = real.stdout + real.stderr
    assert real.returncode != 0
    assert "config key teacher.api_key_env: environment variable HARMDRIFT_TEST_UNSET_KEY is not set" in text
    assert "rule write_rationales" not in text and "localrule write_rationales" not in text, text[-3000:]
    assert (copy / target).read_bytes() == (finished_run / target).read_bytes()
