"""Rule functions of Stage II (one per Snakemake rule, named after it)."""

from __future__ import annotations

import logging

from harmdrift.audit.check_set import run_check_set, write_check_pairs
from harmdrift.audit.judge import write_judgments
from harmdrift.audit.pairs import write_pairs
from harmdrift.audit.table import write_audit_summary, write_audit_table
from harmdrift.backends import write_usage
from harmdrift.config import audit_scorer, chat_backend, judge_config
from harmdrift.core.io import write_json
from harmdrift.core.runtime import set_threads
from harmdrift.report.audit_figures import audit_figures

logger = logging.getLogger(__name__)


def pair_answers(
    *, base: str, tuned: str, split_items: str, pairs: str, scorer: dict, delta: float, max_chars: int,
    cache_dir: str,
) -> dict:  # fmt: skip
    """Rule pair_answers: pair M0's and a tuned model's answers, score both and screen.

    Args:
        base, tuned: M0's and the tuned model's binary answers on the audit split.
        split_items: the audit split's items.
        pairs: the JSONL to write.
        scorer: the ``audit.scorer`` section; delta, max_chars: the screen's settings.
        cache_dir: where scores are cached.
    """
    toxicity, label = audit_scorer(scorer, cache_dir)
    logger.info("scorer: %s", toxicity.describe())
    return write_pairs(
        base, tuned, split_items, pairs, scorer=toxicity, label=label, delta=delta, max_chars=max_chars
    )


def build_check_pairs(*, split_items: str, check_pairs: str, check_set: dict) -> int:
    """Rule build_check_pairs: labelled judge check pairs built from the audit split's items.

    Args:
        split_items: the audit split; check_pairs: the JSONL to write.
        check_set: the ``audit.check_set`` section (per_kind, seed).
    """
    return write_check_pairs(split_items, check_pairs, per_kind=check_set["per_kind"], seed=check_set["seed"])


def judge_check(
    *, check_pairs: str, extra_pairs: list[str], template: str, check: str, judge: dict, check_set: dict,
    cache_dir: str, models_root: str | None = None, threads: int | None = None,
) -> dict:  # fmt: skip
    """Rule judge_check: measure the configured LLM judge on the labelled check pairs.

    The judge is measured in every run, also when the audit uses classifier-only verdicts
    (``audit.verdicts: classifier``), so switching to it is one informed key away.

    Args:
        check_pairs: the built pairs; extra_pairs: user-supplied labelled pairs files.
        template: the judge prompt; check: the report to write.
        judge: the ``audit.judge`` section; check_set: the ``audit.check_set`` section.
        cache_dir: where the judge's replies and check verdicts are cached.
        models_root: the run's converted embedded models (a local judge).
    """
    set_threads(threads)
    cfg = judge_config(judge)
    if cfg.backend == "none":
        summary = {"accuracy": None, "n": 0, "floor": cfg.check_floor, "below_floor": False,
                   "better_than_chance": None, "order_agreement": None, "judge": {"backend": "none"},
                   "items": []}  # fmt: skip
        write_json(check, summary)
        return summary
    return run_check_set(
        chat_backend(judge, cache_dir, models_root), [check_pairs, *extra_pairs], template, cfg, check,
        cache_dir=cache_dir, n_boot=check_set["n_boot"], seed=check_set["seed"],
    )  # fmt: skip


def judge_pairs(
    *, pairs: str, template: str, judgments: str, usage: str, judge: dict, verdicts: str, delta: float,
    cache_dir: str, models_root: str | None = None, threads: int | None = None,
) -> dict:  # fmt: skip
    """Rule judge_pairs: the verdict on each screened pair, from the LLM judge in both orders or,
    with ``audit.verdicts: classifier``, from the screen alone (DART's severity bins)."""
    set_threads(threads)
    cfg = judge_config(judge)
    if verdicts == "classifier" or cfg.backend == "none":
        result = write_judgments(pairs, template, judgments, backend=None, cfg=cfg, delta=delta)
        write_json(usage, {"backend": "none", "verdicts": "classifier", "requests": 0})
        return result
    backend = chat_backend(judge, cache_dir, models_root)
    try:
        return write_judgments(pairs, template, judgments, backend=backend, cfg=cfg, delta=delta)
    finally:
        write_usage(usage, backend)


def audit_table(*, pairs: str, judgments: str, csv: str) -> list[dict]:
    """Rule audit_table: the audit table, one row per pair (what Stage III reads)."""
    return write_audit_table(pairs, judgments, csv)


def summary_meta(audit: dict) -> dict:
    """The screen's and the judge's settings an audit summary reports, from the audit keys a
    summary rule is given (``delta``, ``max_chars``, ``verdicts``, ``scorer``, ``judge``)."""
    judge = audit["judge"]
    return {
        "delta": audit["delta"],
        "max_chars": audit["max_chars"],
        "combine": judge["combine"],
        "scope": judge["scope"],
        "scorer": dict(audit["scorer"]),
        "judge": {"backend": judge["backend"], "model": judge["model"], "base_url": judge.get("base_url")},
        "verdicts": audit["verdicts"],
    }


def audit_summary(
    *, pairs: str, judgments: str, csv: str, check: str, summary: str, summary_md: str, deltas_png: str,
    deltas_pdf: str, counts_png: str, counts_pdf: str, model: str, split: str, protocol: str, audit: dict,
    bootstrap: dict, base: str = "m0",
) -> dict:  # fmt: skip
    """Rule audit_summary: the audit's summary (JSON, Markdown) and its two figures.

    Args:
        pairs, judgments, csv, check: the pairing, the verdicts, the audit table and the
            judge's check-set result.
        summary, summary_md: the summary's outputs.
        deltas_png, deltas_pdf, counts_png, counts_pdf: the audit's figures.
        model: the audited model; split, protocol: where it was audited.
        audit: the audit keys the summary reports (``delta``, ``max_chars``, ``verdicts``,
            ``scorer`` and ``judge``'s back-end, model, server, combine rule and scope).
        bootstrap: ``evaluation.bootstrap`` (resamples and seed of the paired tests' interval).
        base: what the model was audited against (M0, or M0 under the policy for a policy row).
    """
    outputs = {"summary": summary, "summary_md": summary_md}
    result = write_audit_summary(
        pairs, judgments, check, outputs, model=model, split=split, protocol=protocol,
        bootstrap=bootstrap, meta={**summary_meta(audit), "base": base},
    )  # fmt: skip
    audit_figures(csv, summary, deltas_png, deltas_pdf, counts_png, counts_pdf)
    return result
