"""Benchmark: harmdrift's generation backend against a plain baseline, same prompts, same process.

The baseline generates the way DART's own code does: fixed batches of 8 in the given
order, fp32 weights, transformers' built-in sampling, and no early stop (a reply runs
until the model's end-of-sequence token or the token budget). The backend under test uses
its configured batch size, length-sorted batches, auto dtype (bf16 where faster), per-item
seeded sampling and a stop once the conclusion line is written.

Prints the wall time of each and their ratio; nothing is asserted (machines are noisy).

    python perf/bench_generation.py --model results/models/smollm2-135m-instruct --n 64
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

from harmdrift.core.decoding import GenParams
from harmdrift.core.prompts import build_messages, load_template
from harmdrift.core.vocab import BENCHMARKS
from harmdrift.data.load import load_benchmarks
from harmdrift.generate.answers import parse_reply, stop_check
from harmdrift.lm.engine import HFGenerator, HFModelConfig


def pick_prompts(data_dir: str, n: int, seed: int) -> list[dict]:
    """A stratified draw of n test items, equal shares per (benchmark, condition)."""
    items = [i for i in load_benchmarks(data_dir, BENCHMARKS) if i["paper_split"] == "test"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for item in items:
        groups[(item["benchmark"], item["condition"])].append(item)
    rng = random.Random(seed)
    per_group = max(1, n // len(groups))
    chosen = [x for key in sorted(groups) for x in rng.sample(groups[key], per_group)]
    rng.shuffle(chosen)  # a realistic, unsorted order for the baseline
    return chosen[:n]


def run_baseline(model_path: str, conversations, params: GenParams, batch_size: int = 8):
    """Plain transformers generation: fp32, fixed batches, unsorted, no early stop."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    torch.manual_seed(params.seed)
    texts, new_tokens = [], 0
    started = time.perf_counter()
    for offset in range(0, len(conversations), batch_size):
        chunk = conversations[offset : offset + batch_size]
        prompts = [
            tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chunk
        ]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(
                **enc,
                do_sample=params.temperature > 0,
                temperature=params.temperature,
                top_p=params.top_p,
                max_new_tokens=params.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
        fresh = out[:, enc["input_ids"].shape[1] :]
        new_tokens += int((fresh != tokenizer.pad_token_id).sum())
        texts += tokenizer.batch_decode(fresh, skip_special_tokens=True)
    return texts, time.perf_counter() - started, new_tokens


def run_backend(model_path: str, conversations, keys, params: GenParams, batch_size: int, stop: bool):
    generator = HFGenerator(HFModelConfig(model=model_path, batch_size=batch_size), progress=False)
    started = time.perf_counter()
    outs = generator.generate(conversations, params, keys=keys, stop=stop_check("binary") if stop else None)
    elapsed = time.perf_counter() - started
    return [o.text for o in outs], elapsed, sum(o.n_new_tokens for o in outs), generator.dtype_name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="results/models/smollm2-135m-instruct")
    parser.add_argument("--data", default="resources/difference_awareness")
    parser.add_argument("--template", default="config/prompts/binary.txt")
    parser.add_argument("--n", type=int, default=64, help="number of prompts")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="DART's budget is 256")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32], help="backend batch sizes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    items = pick_prompts(args.data, args.n, args.seed)
    template = load_template(args.template)
    conversations = [build_messages(i, template) for i in items]
    params = GenParams(max_new_tokens=args.max_new_tokens, temperature=0.2, top_p=0.9, seed=args.seed)

    base_texts, base_s, base_tok = run_baseline(args.model, conversations, params)

    def parsed(texts):
        return dict(Counter(parse_reply("binary", t, i).status for t, i in zip(texts, items, strict=True)))

    report = {
        "prompts": len(items),
        "max_new_tokens": args.max_new_tokens,
        "threads": torch.get_num_threads(),
        "baseline": {"seconds": round(base_s, 2), "new_tokens": base_tok, "parse": parsed(base_texts)},
        "backend": [],
    }
    keys = [i["id"] for i in items]
    for size in args.batch_size:
        texts, seconds, tokens, dtype = run_backend(args.model, conversations, keys, params, size, stop=True)
        report["backend"].append(
            {
                "batch_size": size,
                "seconds": round(seconds, 2),
                "new_tokens": tokens,
                "dtype": dtype,
                "parse": parsed(texts),
                "speedup": round(base_s / seconds, 2),
            }
        )
    print(json.dumps(report, indent=2))
    for run in report["backend"]:
        print(
            f"baseline {base_s:.1f}s, backend (batch {run['batch_size']}) {run['seconds']:.1f}s: "
            f"{run['speedup']:.2f}x faster"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
