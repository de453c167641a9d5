"""The main results table: one row per model, accuracy (DART's strict rule first, our tolerant
parse second), drift and open-domain rates."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from harmdrift.core.io import DataError
from harmdrift.core.stats import drift_reduction
from harmdrift.core.vocab import (
    BASE_MODEL,
    PLANTED_MODEL,
    PLANTED_REPAIR_MODEL,
    REFERENCE_MODEL,
    SEVERITIES,
    describe_model,
    order_models,
    without_policy,
)
from harmdrift.report.markdown import audit_notes, main_results_markdown
from harmdrift.report.paper import write_paper_comparison
from harmdrift.report.readers import METRIC_COLUMNS, read_open_domain, read_overall_row, read_summary

logger = logging.getLogger(__name__)

DRIFT_COLUMNS = ("drift_n", *(f"drift_{s}" for s in SEVERITIES), "drift_reduction")
OPEN_DOMAIN_COLUMNS = (
    "od_appropriate",
    "od_appropriate_ci_low",
    "od_appropriate_ci_high",
    "od_refusal",
    "od_refusal_ci_low",
    "od_refusal_ci_high",
    "od_keyword_refusal",
    "od_keyword_refusal_ci_low",
    "od_keyword_refusal_ci_high",
)
MAIN_COLUMNS = ("model", "description", *METRIC_COLUMNS, *DRIFT_COLUMNS, *OPEN_DOMAIN_COLUMNS)


# --- main results -----------------------------------------------------------------------


def _nan() -> float:
    return float("nan")


def reduction_reference(model: str, reference_model: str = REFERENCE_MODEL) -> str:
    """The model a model's drift reduction is measured against: the control's models (and their
    policy rows) against the control's planted student, every other model against M_int."""
    return (
        PLANTED_MODEL if without_policy(model) in (PLANTED_MODEL, PLANTED_REPAIR_MODEL) else reference_model
    )


def _drift_fields(summary: dict | None, reference: dict | None) -> dict:
    if summary is None:
        return {column: None for column in DRIFT_COLUMNS}
    fields = {"drift_n": int(summary["n_drift"])}
    for severity in SEVERITIES:
        fields[f"drift_{severity}"] = int(summary["by_severity"].get(severity, 0))
    fields["drift_reduction"] = (
        None if reference is None else drift_reduction(int(reference["n_drift"]), fields["drift_n"])
    )
    return fields


def _open_domain_fields(rates: dict[str, dict] | None, path) -> dict:
    fields = {column: _nan() for column in OPEN_DOMAIN_COLUMNS}
    if rates is None:
        return fields
    for column, category in (
        ("od_appropriate", "appropriate"),
        ("od_refusal", "refusal"),
        ("od_keyword_refusal", "keyword_refusal"),
    ):
        if category not in rates:
            raise DataError(f"{path}: no row for category {category!r} in subset 'all'")
        row = rates[category]
        fields[column], fields[f"{column}_ci_low"], fields[f"{column}_ci_high"] = (
            row["rate"],
            row["ci_low"],
            row["ci_high"],
        )
    return fields


def main_results(
    metrics_paths: dict[str, str | os.PathLike],
    audit_summaries: dict[str, str | os.PathLike],
    open_domain_rates: dict[str, str | os.PathLike],
    reference_model: str = REFERENCE_MODEL,
    *,
    base_model: str = BASE_MODEL,
) -> pd.DataFrame:
    """One row per model with accuracy, intervals, drift counts and open-domain rates.

    Conventions:
        - the accuracy columns lead with ``strict_*`` (DART's own parse rule, comparable with
          the paper), then the unprefixed ones (our tolerant parse); both come from the ALL row.
        - ``mcnemar_p`` is the exact McNemar test against the base model; it is left empty for
          the base model itself, where it would compare the model with itself.
        - ``drift_*`` are empty for models without an audit (the base model).
        - ``drift_reduction`` is ``1 - drift_n / drift_n(reference)``, the reference being
          ``reference_model`` (M_int), or the planted student for the control's repair
          (:func:`reduction_reference`). For the reference itself it is therefore 0.0 (kept, not
          blanked, so the column reads as "change relative to it"); it is empty when the
          reference has no audit or no drift cases.
        - ``od_*`` are the judge's "appropriate" and "refusal" rates and the keyword detector's
          refusal rate of subset "all"; the judge's are empty (NaN) when no judge sorted the
          answers (``audit.verdicts: classifier``), all are for models with no rates file.

    Args:
        metrics_paths: model -> binary metrics CSV (its ALL row is used). Sets the model list.
        audit_summaries: model -> audit summary.json; models without an audit are absent.
        open_domain_rates: model -> open-domain rates CSV; models without one are absent.
        reference_model: the model drift reduction is measured against.
        base_model: the model McNemar p-values were computed against.

    Returns:
        A frame with columns ``MAIN_COLUMNS``, models in :func:`order_models` order.

    Raises:
        DataError: naming the file for a missing ALL row, column or key.
    """
    if not metrics_paths:
        raise ValueError("main_results needs at least one metrics table")
    unknown = sorted(set(audit_summaries) - set(metrics_paths))
    if unknown:
        raise ValueError(f"audit summaries for models without a metrics table: {unknown}")
    summaries = {model: read_summary(path) for model, path in audit_summaries.items()}
    rows = []
    for model in order_models(metrics_paths):
        overall = read_overall_row(metrics_paths[model])
        row = {"model": model, "description": describe_model(model)}
        row.update({column: overall[column] for column in METRIC_COLUMNS})
        row["n"] = int(row["n"])
        if model == base_model:
            row["mcnemar_p"] = None
        reference = summaries.get(reduction_reference(model, reference_model))
        row.update(_drift_fields(summaries.get(model), reference))
        od_path = open_domain_rates.get(model)
        row.update(_open_domain_fields(read_open_domain(od_path) if od_path else None, od_path))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(MAIN_COLUMNS))
    logger.info("main results: %d models (%s)", len(frame), ", ".join(frame["model"]))
    return frame


def write_main_results(
    df: pd.DataFrame,
    csv_path: str | os.PathLike,
    md_path: str | os.PathLike,
    *,
    protocol_note: str,
    notes=(),
    verdicts: str | None = None,
) -> None:
    """Write the main results as CSV (for code) and Markdown (for people)."""
    for path in (csv_path, md_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv_path, index=False)
    Path(md_path).write_text(
        main_results_markdown(df, protocol_note=protocol_note, notes=notes, verdicts=verdicts),
        encoding="utf-8",
    )
    logger.info("wrote %s and %s", csv_path, md_path)


def build_results_tables(
    metrics_paths: dict[str, str | os.PathLike],
    audit_summaries: dict[str, str | os.PathLike],
    open_domain_rates: dict[str, str | os.PathLike],
    *,
    main_csv: str | os.PathLike,
    main_md: str | os.PathLike,
    comparison_md: str | os.PathLike,
    student: str,
    protocol: dict,
    protocol_note: str,
    reference_model: str = REFERENCE_MODEL,
) -> pd.DataFrame:
    """Build and write every results table: one call for the rule's script.

    Returns:
        The main results frame.
    """
    frame = main_results(metrics_paths, audit_summaries, open_domain_rates, reference_model)
    # One judge setting per run: the first audit says whose verdicts the drift counts are.
    verdicts = next((read_summary(path).get("verdicts") for path in audit_summaries.values()), None)
    write_main_results(
        frame, main_csv, main_md, protocol_note=protocol_note, notes=audit_notes(audit_summaries),
        verdicts=verdicts,
    )  # fmt: skip
    write_paper_comparison(frame, comparison_md, student=student, protocol=protocol)
    return frame
