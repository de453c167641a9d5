"""Scoring one model's answer file into its metric tables (CSV and Markdown)."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from harmdrift.core.io import DataError, read_jsonl
from harmdrift.core.parsing import STRICT_RULE_NOTE, TOLERANT_RULE_NOTE
from harmdrift.evaluate.markdown import metrics_markdown
from harmdrift.evaluate.mc_metrics import mc_metrics
from harmdrift.evaluate.metrics import binary_metrics

logger = logging.getLogger(__name__)

N1_NOTE = (
    "N1 (BBQ) is a seeded reconstruction of the original benchmark file, not the original items; "
    "its numbers are not directly comparable with published N1 results."
)


def load_answers(path: str | Path) -> pd.DataFrame:
    """Read an answer file into a frame, one row per item.

    The records are those :func:`harmdrift.generate.answers.generate_answers` writes: the
    item's fields, ``raw_output`` (the reply as generated, which DART's strict rule reads) and
    ``prediction``/``parse_status`` (our tolerant parse of it).

    Raises:
        DataError: for an empty file or duplicated ids.
    """
    records = read_jsonl(path)
    if not records:
        raise DataError(f"{path}: no answers to score")
    frame = pd.DataFrame.from_records(records)
    duplicated = frame["id"][frame["id"].duplicated()].tolist()
    if duplicated:
        raise DataError(f"{path}: duplicated item ids {duplicated[:5]}")
    return frame


def _label_reconstructed(table: pd.DataFrame, answers: pd.DataFrame) -> pd.DataFrame:
    """Flag rows built (wholly or partly) from reconstructed items."""
    if "reconstructed" not in answers:
        return table.assign(includes_reconstructed=False)
    rebuilt = set(answers.loc[answers["reconstructed"].fillna(False).astype(bool), "benchmark"])
    flags = [b in rebuilt or (b == "ALL" and bool(rebuilt)) for b in table["benchmark"]]
    return table.assign(includes_reconstructed=flags)


def _provenance_lines(answers: pd.DataFrame) -> list[str]:
    first = answers.iloc[0]
    return [
        f"- model: `{first['model']}`; weights: `{first['provenance']}`",
        f"- split: `{first['split']}`, {len(answers)} items; decoding: `{first['decoding']}`",
    ]


def _write_tables(
    table: pd.DataFrame, answers: pd.DataFrame, csv_path, md_path, title: str, rule_notes=()
) -> None:
    table = _label_reconstructed(table, answers)
    table.insert(0, "model", answers["model"].iloc[0])
    Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv_path, index=False)
    notes = [f"- {note}" for note in rule_notes] + _provenance_lines(answers)
    if table["includes_reconstructed"].any():
        notes.append(f"- {N1_NOTE}")
    body = metrics_markdown(table.drop(columns=["model", "includes_reconstructed"]), title)
    Path(md_path).write_text(body.rstrip() + "\n\n" + "\n".join(notes) + "\n", encoding="utf-8")
    logger.info("wrote %s and %s", csv_path, md_path)


def score_binary(
    answers_path: str | Path,
    csv_path: str | Path,
    md_path: str | Path,
    *,
    reference_path: str | Path | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Write DART's binary-task metrics, with McNemar against the reference model (M0).

    The table leads with accuracy under DART's strict rule and gives our tolerant parse
    after it; the Markdown footer states both rules.
    """
    answers = load_answers(answers_path)
    reference = load_answers(reference_path) if reference_path else None
    table = binary_metrics(answers, n_boot=n_boot, seed=seed, reference=reference)
    model = answers["model"].iloc[0]
    _write_tables(
        table,
        answers,
        csv_path,
        md_path,
        f"Binary task (DART framing): {model}",
        rule_notes=(STRICT_RULE_NOTE, TOLERANT_RULE_NOTE),
    )
    overall = table[table["benchmark"] == "ALL"].iloc[0]
    logger.info(
        "%s: strict overall %.3f [%.3f, %.3f], EQUAL %.3f, DIFF %.3f, abstain %.3f; "
        "tolerant overall %.3f [%.3f, %.3f], EQUAL %.3f, DIFF %.3f, abstain %.3f",
        model,
        overall["strict_overall_acc"],
        overall["strict_overall_acc_ci_low"],
        overall["strict_overall_acc_ci_high"],
        overall["strict_equal_acc"],
        overall["strict_diff_acc"],
        overall["strict_abstain_rate"],
        overall["overall_acc"],
        overall["ci_low"],
        overall["ci_high"],
        overall["equal_acc"],
        overall["diff_acc"],
        overall["abstain_rate"],
    )
    return table


def score_mc(
    answers_path: str | Path,
    csv_path: str | Path,
    md_path: str | Path,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Write the original benchmark's 3-way metrics (DiffAware, CtxtAware)."""
    answers = load_answers(answers_path)
    table = mc_metrics(answers, n_boot=n_boot, seed=seed)
    model = answers["model"].iloc[0]
    _write_tables(table, answers, csv_path, md_path, f"3-way multiple choice (original framing): {model}")
    return table
