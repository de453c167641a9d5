"""Benchmark: the local judge's likelihood scoring on the default check set, the engine's way
against batches in file order with every prompt run whole, same process.

The judge check asks the embedded judge the drift question on every check pair in both
orders and reads the answer off the next token's probabilities. Two things make it cheaper:
- Its prompts hold one-line and 512-character explanations alike, so a batch in file order
  pads most rows to its longest one; sorting by length first (``sort_by_length``, on by
  default) pads little.
- The judge template's instructions come first, so every prompt starts with the same few
  hundred tokens; the engine runs them once per scoring call and every batch shares their KV
  cache.
- Both orders of every pair are scored in one call, and an item's check pairs share its
  question, gold answer and often the first explanation: rows grouped by such an opening run
  it once per batch (``lm.groups``).

Builds the default profile's audit split and check pairs in memory (nothing is written),
runs the judge's real path (``audit.judge.ask_judge``, drift field only, no reason) four
times on one loaded model: file order without sharing (the baseline), length-sorted without
sharing, length-sorted with the common prefix shared, and that with row groups (the
default). Prints each wall time, its ratio to the baseline, the share of prompt tokens that
are shared, and whether the verdicts agree. Nothing is asserted: machines are noisy.

    python perf/bench_scoring.py --model results/default/models/smollm2-135m-instruct  # 120 pairs
    python perf/bench_scoring.py --pairs 40                                    # a quicker look
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import yaml
from bench_pipeline import cpu_info  # perf/ is on sys.path when run as a script

from harmdrift.audit.check_pairs import build_check_pairs
from harmdrift.audit.check_set import DRIFT_ONLY
from harmdrift.audit.judge import ORDERS, TEMPLATE_SLOTS, ask_judge, judge_messages
from harmdrift.config import chat_backend, judge_config, validate_config
from harmdrift.core.prompts import load_template
from harmdrift.data.load import load_benchmarks
from harmdrift.data.splits import SplitConfig, make_splits
from harmdrift.lm import engine, groups

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MIN_SHARED = engine.MIN_SHARED_PREFIX
DEFAULT_GROUP_SHARE = groups.MIN_GROUP_SHARE
MODES = {  # name: (sort_by_length, share the common prefix, group rows by a longer opening)
    "file order, whole prompts (baseline)": (False, False, False),
    "length-sorted, whole prompts": (True, False, False),
    "length-sorted, shared prefix": (True, True, False),
    "length-sorted, shared prefix, row groups (default)": (True, True, True),
}


def default_config() -> dict:
    with open(ROOT / "config/config.yaml", encoding="utf-8") as fh:
        return validate_config(yaml.safe_load(fh), ROOT / "config/schema.yaml")


def check_pairs(config: dict, limit: int | None) -> list[dict]:
    data = config["data"]
    items = load_benchmarks(ROOT / data["dir"], data["benchmarks"])
    val = make_splits(items, SplitConfig(**data["split"]))["val"]
    built = config["audit"]["check_set"]
    pairs = build_check_pairs(val, per_kind=built["per_kind"], seed=built["seed"])
    return pairs[:limit] if limit else pairs


def timed_verdicts(backend, pairs, template, cfg, sort: bool, share: bool, group: bool) -> tuple[float, list]:
    generator = backend._load()
    generator.cfg = replace(generator.cfg, sort_by_length=sort)
    # A threshold no prefix reaches turns sharing off.
    engine.MIN_SHARED_PREFIX = DEFAULT_MIN_SHARED if share else 10**9
    groups.MIN_GROUP_SHARE = DEFAULT_GROUP_SHARE if group else 10**9
    started = time.perf_counter()
    verdicts = ask_judge(backend, pairs, template, cfg, key_prefix=f"bench{sort}{share}{group}:",
                         fields=DRIFT_ONLY, want_reason=False)  # fmt: skip
    return time.perf_counter() - started, verdicts


def shared_shares(backend, pairs, template) -> tuple[float, float]:
    """Of all prompt tokens of the one call that scores both orders: the share in the common
    prefix (run once), and the further share that row groups run once per group."""
    generator = backend._load()
    texts = [generator.render(judge_messages(pair, template, order)) for order in ORDERS for pair in pairs]
    prompts = [generator.tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    total = sum(map(len, prompts))
    start = generator._shared_length(prompts, 1)
    grouped = [(shared, rows) for shared, rows in groups.group_rows(prompts, start, 1) if len(rows) > 1]
    saved = sum((shared - start) * (len(rows) - 1) for shared, rows in grouped)
    return start * len(prompts) / total, saved / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=None, help="judge only the first N check pairs")
    parser.add_argument(
        "--model", default="results/default/models/smollm2-135m-instruct",
        help="the judge's model folder (the embedded one: snakemake --cores 1 <this folder>)",
    )  # fmt: skip
    args = parser.parse_args()
    os.chdir(ROOT)  # the config's paths are relative to the workflow folder
    config = default_config()
    # Every verdict is computed, none read back.
    judge = {**config["audit"]["judge"], "model": str(Path(args.model).resolve()), "cache": False}
    cfg = judge_config(judge)
    backend = chat_backend(judge, None)
    pairs = check_pairs(config, args.pairs)
    template = load_template(ROOT / "config/prompts/judge_drift.txt", TEMPLATE_SLOTS)
    print(f"cpu: {cpu_info()}")
    print(f"{len(pairs)} check pairs, both orders, judge {judge['model']} batch {judge['batch_size']}")
    timed_verdicts(backend, pairs[:4], template, cfg, sort=True, share=True, group=True)  # load, warm up
    prefix, grouped = shared_shares(backend, pairs, template)
    print(f"shared prefix: {prefix:.1%} of prompt tokens; row groups run a further {grouped:.1%} once")
    results = {name: timed_verdicts(backend, pairs, template, cfg, *mode) for name, mode in MODES.items()}
    base_s, base_verdicts = next(iter(results.values()))
    for name, (seconds, verdicts) in results.items():
        same = sum(
            a[order]["drift"] == b[order]["drift"]
            for a, b in zip(base_verdicts, verdicts, strict=True)
            for order in ORDERS
        )
        ratio = base_s / seconds
        print(f"{name:52s} {seconds:7.1f} s  {ratio:5.2f}x  verdicts equal {same} of {2 * len(pairs)}")


if __name__ == "__main__":
    main()
