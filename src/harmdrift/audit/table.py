"""The audit table and its summary: one row per pair, counts by severity, category and benchmark."""

from __future__ import annotations

import logging

from harmdrift.core.io import read_jsonl, write_json
from harmdrift.core.stats import format_p, is_missing, paired_tests
from harmdrift.core.vocab import SEVERITIES

logger = logging.getLogger(__name__)

ORDER_COLUMNS = ("drift", "category", "severity", "reason")
AUDIT_COLUMNS = [
    "id", "benchmark", "group", "condition", "gold", "pred_base", "pred_tuned", "correct_base",
    "correct_tuned", "score_base", "score_tuned", "delta", "screened", "judge_status",
    *[f"{c}_{o}" for o in ("ab", "ba") for c in ORDER_COLUMNS],
    "orders_agree", "drift", "category", "severity", "reason",
]  # fmt: skip


def _order_columns(verdict: dict | None, order: str) -> dict:
    if verdict is None:
        return {f"{c}_{order}": None for c in ORDER_COLUMNS}
    return {f"{c}_{order}": verdict.get(c) for c in ORDER_COLUMNS}


def audit_rows(pairs: list[dict], judgments: list[dict]) -> list[dict]:
    """One row per audited item: both sides, the screen, each order's verdict and the combined one."""
    by_id = {j["id"]: j for j in judgments}
    rows = []
    for pair in pairs:
        judged = by_id.get(pair["id"])
        combined = judged["combined"] if judged else None
        status = combined["status"] if combined else "not_screened"
        row = {
            "id": pair["id"],
            "benchmark": pair["benchmark"],
            "group": pair.get("group") or pair["benchmark"],
            "condition": pair["condition"],
            "gold": pair["gold_label"],
            "pred_base": pair["base"]["prediction"],
            "pred_tuned": pair["tuned"]["prediction"],
            "correct_base": pair["base"]["prediction"] == pair["gold_label"],
            "correct_tuned": pair["tuned"]["prediction"] == pair["gold_label"],
            "score_base": pair["base"]["score"],
            "score_tuned": pair["tuned"]["score"],
            "delta": pair["delta"],
            "screened": pair["screened"],
            "judge_status": status,
            **_order_columns(judged.get("ab") if judged else None, "ab"),
            **_order_columns(judged.get("ba") if judged else None, "ba"),
            "orders_agree": combined.get("orders_agree") if combined else None,
            "drift": bool(combined and combined["drift"]),
            "category": combined.get("category") if combined else None,
            "severity": combined.get("severity") if combined else None,
            "reason": combined.get("reason") if combined else None,
        }
        rows.append(row)
    return rows


def paired_statistics(
    rows: list[dict], *, threshold: float, bootstrap: dict, group_by: str = "benchmark"
) -> dict:
    """:func:`~harmdrift.core.stats.paired_tests` of the tuned model's scores against its base's,
    overall and per ``group_by`` value (benchmark, or a prompt set's group), on the pairs where
    both sides were scored."""
    scored = [r for r in rows if not (is_missing(r["score_base"]) or is_missing(r["score_tuned"]))]

    def tests(group: list[dict]) -> dict:
        return paired_tests(
            [r["score_base"] for r in group], [r["score_tuned"] for r in group], threshold,
            n_boot=bootstrap["n_resamples"], seed=bootstrap["seed"],
        )  # fmt: skip

    groups = sorted({r[group_by] for r in scored})
    return {
        "bootstrap": dict(bootstrap),
        "overall": tests(scored),
        f"by_{group_by}": {g: tests([r for r in scored if r[group_by] == g]) for g in groups},
    }


def audit_summary(
    rows: list[dict], *, model: str, split: str, protocol: str, check: dict, bootstrap: dict,
    base: str = "m0", group_by: str = "benchmark", **meta,
) -> dict:  # fmt: skip
    """Counts by severity, category and ``group_by`` (benchmark, or a prompt set's group), the
    paired tests of the scores (overall and per group), the judge's order agreement and
    check-set result; ``base`` names what the model was compared against."""
    drift = [r for r in rows if r["drift"]]
    judged = [r for r in rows if r["judge_status"] not in ("not_screened",)]
    agree = [r["orders_agree"] for r in rows if r["orders_agree"] is not None]
    groups = sorted({r[group_by] for r in rows})
    categories = sorted({r["category"] for r in drift if r["category"]})
    return {
        "model": model,
        "base": base,
        "group_by": group_by,
        "split": split,
        "protocol": protocol,
        "n_pairs": len(rows),
        "n_screened": sum(r["screened"] for r in rows),
        "n_judged": len(judged),
        "n_unscored": sum(r["judge_status"] == "unscored" for r in rows),
        "n_drift": len(drift),
        "by_severity": {s: sum(r["severity"] == s for r in drift) for s in SEVERITIES},
        "by_category": {c: sum(r["category"] == c for r in drift) for c in categories},
        f"by_{group_by}": {g: sum(r[group_by] == g for r in drift) for g in groups},
        "order_agreement": sum(agree) / len(agree) if agree else None,
        "mean_delta": sum(r["delta"] for r in rows) / len(rows) if rows else None,
        "paired": paired_statistics(rows, threshold=meta["delta"], bootstrap=bootstrap, group_by=group_by),
        "check_set": {k: check.get(k) for k in ("accuracy", "n", "floor", "below_floor", "order_agreement")},
        **meta,
    }


def summary_markdown(summary: dict) -> str:
    """A short human-readable version of the audit summary."""
    check = summary["check_set"]
    base = "M0" if summary["base"] == "m0" else summary["base"]
    group_by = summary["group_by"]
    lines = [f"# Harm-drift audit: {summary['model']} vs {base}", ""]
    if check.get("below_floor"):
        scored = f"the judge scored {check['accuracy']:.0%} on its {check['n']}-pair check set"
        if summary.get("verdicts") == "classifier":
            # The counts below come from the screen alone; the warning is about the judge.
            lines += [f"> Note: {scored}, below the floor of {check['floor']:.0%}; this audit's "
                      "drift counts do not use it (classifier-only verdicts).", ""]  # fmt: skip
        else:
            lines += [f"> **WARNING: {scored}, below the floor of {check['floor']:.0%}. Its drift "
                      "verdicts are not trustworthy.**", ""]  # fmt: skip
    where = "split" if summary["protocol"] != "fine-tune" else "prompt set"
    lines += [
        f"- {where.capitalize()} audited: `{summary['split']}`"
        + (f" ({summary['protocol']} protocol)" if where == "split" else "")
        + f", {summary['n_pairs']} pairs.",
        *_verdict_lines(summary, check),
        "",
        f"| {group_by} | drift |",
        "|---|---|",
        *[f"| {g} | {n} |" for g, n in summary[f"by_{group_by}"].items()],
        "",
        *paired_markdown(summary["paired"], base=base, group_by=group_by),
    ]
    return "\n".join(lines)


def _verdict_lines(summary: dict, check: dict) -> list[str]:
    """The counts as the verdicts were reached: by the judge, or by the screen alone (then every
    screened pair is a drift case, binned by its score increase, and no judge figure applies)."""
    severities = ", ".join(f"{k} {v}" for k, v in summary["by_severity"].items())
    screened = f"Screened (score increase > {summary['delta']}): {summary['n_screened']}"
    accuracy = check.get("accuracy")
    if summary.get("verdicts") != "judge":
        judge_note = (
            f"The judge, measured but not used here, scored {accuracy:.0%} on its check set."
            if accuracy is not None else "No judge was measured."
        )  # fmt: skip
        return [
            f"- {screened}; no judge: the screen's verdict stands (`audit.verdicts: classifier`).",
            f"- Drift cases (classifier screen): **{summary['n_drift']}**.",
            f"- By severity (bins of the score increase): {severities}.",
            f"- {judge_note}",
        ]
    agreement = summary["order_agreement"]
    categories = ", ".join(f"{k} {v}" for k, v in summary["by_category"].items()) or "none"
    return [
        f"- {screened}; judged: {summary['n_judged']}; unscored: {summary['n_unscored']}.",
        f"- Confirmed drift (judge): **{summary['n_drift']}** (combine rule `{summary['combine']}`).",
        f"- By severity (judge): {severities}.",
        f"- By category: {categories}.",
        "- Judge order agreement: " + ("n/a" if agreement is None else f"{agreement:.0%}") + ".",
        "- Judge check-set accuracy: " + ("n/a" if accuracy is None else f"{accuracy:.0%}") + ".",
    ]


def _paired_row(group: str, tests: dict) -> str:
    if not tests["n"]:
        return f"| {group} | 0 | n/a | n/a | n/a | n/a |"
    low, high = tests["mean_delta_ci"]
    sign = tests["sign"]
    return (
        f"| {group} | {tests['n']} | {tests['mean_delta']:+.4f} [{low:+.4f}, {high:+.4f}] "
        f"| {format_p(tests['wilcoxon']['p'])} | {sign['n_up']} / {sign['n_down']}, {format_p(sign['p'])} "
        f"| {format_p(tests['mann_whitney']['p'])} |"
    )


def paired_markdown(paired: dict, *, base: str = "M0", group_by: str = "benchmark") -> list[str]:
    """The paired tests as a Markdown table, one row per ``group_by`` value and one for all pairs."""
    overall = paired["overall"]
    threshold = overall["sign"]["threshold"] if overall["sign"] else None
    return [
        f"Paired tests of the screen's scores (fine-tune minus {base}, item by item; two-sided p-values). "
        f"Sign test: pairs whose score rose / fell by more than {threshold}. Mann-Whitney U ignores "
        "the pairing (DART's comparison), for reference.",
        "",
        f"| {group_by} | n | mean delta [95% CI] | Wilcoxon p | sign: up / down, p | Mann-Whitney p |",
        "|---|---|---|---|---|---|",
        *[_paired_row(g, tests) for g, tests in paired[f"by_{group_by}"].items()],
        _paired_row("all", overall),
        "",
    ]


def write_audit_table(pairs_path, judgments_path, csv_path) -> list[dict]:
    """Write ``audit.csv``, one row per pair, from the pairing and the verdicts alone.

    The judge's check-set result stays out: it changes the summary's notes, never a row, so
    adding check pairs does not re-run the repair that reads this table.
    """
    import pandas as pd

    rows = audit_rows(read_jsonl(pairs_path), read_jsonl(judgments_path))
    pd.DataFrame(rows, columns=AUDIT_COLUMNS).to_csv(csv_path, index=False)
    return rows


def write_audit_summary(
    pairs_path,
    judgments_path,
    check_path,
    outputs: dict,
    *,
    model: str,
    split: str,
    protocol: str,
    bootstrap: dict,
    meta: dict,
) -> dict:
    """Write the audit's summary (``outputs["summary"]`` JSON, ``outputs["summary_md"]`` Markdown),
    with the paired tests (``bootstrap``: ``n_resamples`` and ``seed`` of the mean delta's
    interval) and the judge's check-set result beside the counts; the figures are drawn by report/."""
    import json

    rows = audit_rows(read_jsonl(pairs_path), read_jsonl(judgments_path))
    with open(check_path, encoding="utf-8") as fh:
        check = json.load(fh)
    summary = audit_summary(
        rows, model=model, split=split, protocol=protocol, check=check, bootstrap=bootstrap, **meta
    )
    write_json(outputs["summary"], summary)
    with open(outputs["summary_md"], "w", encoding="utf-8") as fh:
        fh.write(summary_markdown(summary))
    logger.info(
        "audit %s: %d pairs, %d screened, %d drift %s",
        model, summary["n_pairs"], summary["n_screened"], summary["n_drift"], summary["by_severity"],
    )  # fmt: skip
    return summary
