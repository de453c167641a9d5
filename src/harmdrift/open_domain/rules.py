"""Rule functions of the open-domain queries (one per Snakemake rule, named after it)."""

from __future__ import annotations

import logging

import pandas as pd

from harmdrift.backends import write_usage
from harmdrift.config import chat_backend, section_params
from harmdrift.core.io import DataError, read_jsonl, write_json
from harmdrift.core.prompts import load_template
from harmdrift.core.runtime import set_threads
from harmdrift.open_domain.classify import JUDGE_SLOTS, classify_answers, keyword_records
from harmdrift.open_domain.queries import load_queries, write_query_split
from harmdrift.open_domain.rates import write_rates

logger = logging.getLogger(__name__)


def write_open_queries(*, queries: str, selected: str, n_queries: int | None, seed: int) -> int:
    """Rule write_open_queries: the seeded, stratified sample of queries every model answers."""
    return write_query_split(queries, selected, n=n_queries, seed=seed)


def classify_open_answers(
    *, answers: str, queries: str, template: str, classified: str, rates: str, usage: str, model: str,
    judge: dict, verdicts: str, bootstrap: dict, cache_dir: str | None, models_root: str | None = None,
    threads: int | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Rule classify_open_answers: the judge sorts one model's answers; rates with CIs.

    Args:
        answers: the model's answers to the selected queries (JSONL).
        queries: the query set.
        template: the judge prompt file ({query}, {expected}, {difference}, {answer}).
        classified, rates, usage: the rule's outputs (JSONL, CSV, JSON).
        model: the model's name, for the rates table.
        judge: the judge's config section (back-end keys, decoding, max_reasks, structured_output).
        verdicts: ``audit.verdicts``; with "classifier" (no judge trusted) the answers are not
            sorted and only the keyword refusal rate is measured.
        bootstrap: the ``evaluation.bootstrap`` section.
        cache_dir: where replies are cached (None turns caching off).
        models_root: the run's converted embedded models (a local judge).
        threads: CPU threads for a local judge.

    Raises:
        DataError: for an empty answers file or an answer id missing from the query set.
    """
    set_threads(threads)
    query_set = load_queries(queries)
    records = read_jsonl(answers)
    if not records:
        raise DataError(f"{answers}: no answers to judge")
    n_boot, seed = bootstrap["n_resamples"], bootstrap["seed"]
    if verdicts == "classifier" or judge["backend"] == "none":
        # The same rule as the audit: without a judge that beats chance, report only what the
        # keyword check measures.
        write_json(usage, {"backend": "none", "verdicts": "classifier", "requests": 0})
        unjudged = keyword_records(records, query_set, out_path=classified)
        return write_rates(unjudged, model, rates, n_boot=n_boot, seed=seed)
    params = section_params(judge)
    backend = chat_backend(judge, cache_dir, models_root)
    logger.info("open-domain judge for %s: %s; decoding %s", model, backend.describe(), params)
    try:
        classified_records = classify_answers(
            records,
            query_set,
            backend=backend,
            template=load_template(template, JUDGE_SLOTS),
            params=params,
            out_path=classified,
            max_reasks=judge["max_reasks"],
            structured_output=judge["structured_output"],
        )
    finally:
        # Tokens already spent are still spent, even when the run fails part-way.
        write_usage(usage, backend)
    return write_rates(classified_records, model, rates, n_boot=n_boot, seed=seed)
