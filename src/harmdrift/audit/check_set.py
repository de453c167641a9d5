"""The judge's labelled check set: building it, judging it, and scoring the judge on it.

The built set comes from the audit split's items, with labels known by construction
(``audit.check_pairs``); a user may add labelled pairs of their own (human annotations, say),
which are judged and reported the same way and also on their own. The judge is asked the
drift question alone, in both orders, and its combined verdict is scored against the labels
(``audit.meta_eval``). Verdicts are cached across runs under ``cache_dir``, keyed by the
judge, its decoding, the prompt and the pair, so a re-run pays only for new pairs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from harmdrift.audit.check_pairs import build_check_pairs, load_labelled_pairs
from harmdrift.audit.judge import FIELDS, TEMPLATE_SLOTS, JudgeConfig, ask_judge, combine
from harmdrift.audit.meta_eval import meta_evaluate, passes_floor
from harmdrift.core.io import DataError, json_sha256, read_jsonl, write_json, write_jsonl
from harmdrift.core.prompts import load_template
from harmdrift.core.store import KeyValueStore
from harmdrift.lm.structured import SCORED

logger = logging.getLogger(__name__)

# Verdicts kept across runs. Default profile (local judge, 2-core AMD EPYC, 2026-12-06): judging
# the 120 check pairs in both orders is 224.9 s of the 231.8 s judge_check job; a re-run with the
# same judge, template and pairs (after a change to another audit.judge key, or to
# check_set.n_boot or seed) reads all 120 verdicts and skips that. The local judge's likelihood
# scoring is not kept in the response cache, so this is the only cache of the check.
CACHE_FILE = "judge_check.sqlite"
DRIFT_ONLY = FIELDS[:1]  # the check measures the drift verdict; category and severity are not labelled


def write_check_pairs(split_items: str | Path, out_path: str | Path, *, per_kind: int, seed: int) -> int:
    """Build the labelled check pairs from the audit split's items and write them (JSONL)."""
    items = read_jsonl(split_items)
    try:
        pairs = build_check_pairs(items, per_kind=per_kind, seed=seed)
    except ValueError as err:
        raise DataError(f"{split_items}: {err} (lower audit.check_set.per_kind)") from None
    write_jsonl(out_path, [{**pair, "source": "built"} for pair in pairs])
    logger.info("check set: %d pairs built from %d items of %s", len(pairs), len(items), split_items)
    return len(pairs)


def _verdict_key(describe: dict, template: str, cfg: JudgeConfig, pair: dict) -> str:
    what = [describe, template, cfg.params.as_dict(), cfg.calibrate, [f.name for f in DRIFT_ONLY],
            {k: pair[k] for k in ("question", "gold_label", "base", "tuned")}]  # fmt: skip
    return json_sha256(what)


def _judge_cached(backend, pairs: list[dict], template: str, cfg: JudgeConfig, cache_dir) -> tuple[list, int]:
    """Both orders' drift verdicts for every pair, from the cache where it has them."""
    describe = backend.describe()
    keys = [_verdict_key(describe, template, cfg, pair) for pair in pairs]
    store = KeyValueStore(Path(cache_dir) / CACHE_FILE, "verdicts") if cache_dir else None
    # An empty store has length 0, so "if store" would skip it: test for None.
    found = store.get_many(keys) if store is not None else {}
    missing = [i for i, key in enumerate(keys) if key not in found]
    if missing:
        fresh = ask_judge(backend, [pairs[i] for i in missing], template, cfg, key_prefix="check:",
                          fields=DRIFT_ONLY, want_reason=False)  # fmt: skip
        found.update((keys[i], verdict) for i, verdict in zip(missing, fresh, strict=True))
        if store is not None:
            # Unscored verdicts are not kept, so a re-run asks for them again.
            scored = [(keys[i], found[keys[i]]) for i in missing]
            store.put_many((k, v) for k, v in scored if v["ab"]["status"] == v["ba"]["status"] == SCORED)
    if store is not None:
        store.close()
    logger.info("check set: %d pairs, %d verdicts from the cache", len(pairs), len(pairs) - len(missing))
    return [{**found[key], "id": pair["id"]} for key, pair in zip(keys, pairs, strict=True)], len(
        pairs
    ) - len(missing)


def _report(rows: list[dict], n_boot: int, seed: int) -> dict:
    return meta_evaluate(
        [
            {"kind": r["kind"], "expect_drift": r["expect_drift"], "predicted_drift": r["predicted"]}
            for r in rows
        ],
        n_boot=n_boot,
        seed=seed,
    )


def run_check_set(
    backend, check_paths: list, template_path, cfg: JudgeConfig, out_path, *, cache_dir=None,
    n_boot: int = 2000, seed: int = 0,
) -> dict:  # fmt: skip
    """Judge the check pairs and score the judge: n, accuracy, precision, recall, F1, per kind, with CIs.

    Args:
        check_paths: the built check pairs, then any user-supplied labelled pairs files.
        cache_dir: where verdicts are cached across runs (None: no cache).

    Returns:
        The summary written to ``out_path``. ``below_floor`` compares the *lower* 95% bound of
        the accuracy with ``cfg.check_floor``; ``better_than_chance`` asks whether the lower
        bound of the balanced accuracy is above 0.5 (the check set is not balanced, so plain
        accuracy's chance level is not 0.5: a judge that always says "no drift" scores 0.6).
    """
    pairs = load_labelled_pairs(check_paths[0])
    for path in check_paths[1:]:
        pairs += [{**pair, "source": "user"} for pair in load_labelled_pairs(path)]
    template = load_template(template_path, TEMPLATE_SLOTS)
    verdicts, hits = _judge_cached(backend, pairs, template, cfg, cache_dir)
    rows = []
    for pair, verdict in zip(pairs, verdicts, strict=True):
        combined = combine(verdict["ab"], verdict["ba"], cfg.combine)
        predicted = combined["drift"] if combined["status"] == SCORED else None
        rows.append({
            "id": pair["id"], "kind": pair.get("kind", "user"), "source": pair.get("source", "built"),
            "expect_drift": pair["expect_drift"], "predicted": predicted,
            "correct": predicted == pair["expect_drift"], "combined": combined, **verdict,
        })  # fmt: skip
    report = _report(rows, n_boot, seed)
    agree = [r["combined"]["orders_agree"] for r in rows if r["combined"]["orders_agree"] is not None]
    accuracy, balanced = report["accuracy"], report["balanced_accuracy"]
    summary = {
        "accuracy": accuracy["value"],
        "accuracy_ci": [accuracy["ci_low"], accuracy["ci_high"]],
        "balanced_accuracy": balanced["value"],
        "balanced_accuracy_ci": [balanced["ci_low"], balanced["ci_high"]],
        "n": len(pairs),
        "floor": cfg.check_floor,
        "floor_rule": "below the floor when the lower 95% bound of the accuracy is under it",
        "below_floor": not passes_floor(report, cfg.check_floor),
        "better_than_chance": balanced["ci_low"] is not None and balanced["ci_low"] > 0.5,
        "order_agreement": sum(agree) / len(agree) if agree else None,
        "accuracy_by_kind": {k: v["accuracy"]["value"] for k, v in report["by_kind"].items()},
        "meta": report,
        "by_source": {
            s: _report([r for r in rows if r["source"] == s], n_boot, seed)
            for s in sorted({r["source"] for r in rows})
        },  # fmt: skip
        "fields": [f.name for f in DRIFT_ONLY],
        "combine": cfg.combine,
        "cache_hits": hits,
        "judge": backend.describe(),
        "items": rows,
    }
    if summary["below_floor"]:
        low, high = accuracy["ci_low"] or 0.0, accuracy["ci_high"] or 0.0
        logger.warning(
            "JUDGE BELOW FLOOR: accuracy %.0f%% [%.0f, %.0f] on %d check pairs (floor %.0f%% on the lower "
            "bound); its drift verdicts are not trustworthy",
            *(100 * x for x in (accuracy["value"], low, high)), len(pairs), 100 * cfg.check_floor,
        )  # fmt: skip
    write_json(out_path, summary)
    return summary
