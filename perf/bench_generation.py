"""Benchmark: harmdrift's generation backend against a plain baseline, same prompts, same process.

The baseline generates the way DART's own code does: fixed batches of 8 in the given
order, fp32 weights, transformers' built-in sampling, and no early stop (a reply runs
until the model's end-of-sequence token or the token budget). The backend under test uses
its configured batch size, length-sorted batches, auto dtype (fp32 on a CPU), per-item
seeded sampling and a stop once the conclusion line is written.

Prints the wall time of each and their ratio; nothing is asserted (machines are noisy).

It also measures the machine's matmul rate in the same run (fp32, and bf16 where the
hardware has it; 2048^3 and decode-shaped 32x576x1536 products, best of several;
perf/bench_pipeline.py's ``matmul_rates``) and prints each run as a fraction of that limit:
the ideal time (prompt tokens + new tokens) x 2 x parameters / the large-product rate in the
run's dtype, divided by the measured wall time. Prefill is counted for every prompt token,
and the parameter count includes the (tied) output layer once.

``--quantization-arms`` runs no baseline: it compares the engine on fp32 weights with the
engine on bitsandbytes' 4-bit NF4 weights (double quantisation, fp32 compute), same prompts,
same decoding, the first ``--batch-size``, each in a fresh process of its own so its peak RSS
(loading included) is its own. Per arm: generation wall and CPU time (all threads; loading
timed apart), new tokens per second, peak RSS, the weights' size, and the fraction of the limit
above (both arms counted at the fp32 parameter count and fp32 rate); and how many replies are
identical and how many parse to the same conclusion (two unparseable replies count as the
same). 4-bit weights differ from fp32 ones, so replies are expected to differ.

    python perf/bench_generation.py --model results/default/models/smollm2-135m-instruct --n 64
    python perf/bench_generation.py --quantization-arms --n 16   # the same default --model
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
from bench_pipeline import (  # perf/ is on sys.path when run as a script
    cpu_info,
    matmul_rates,
    peak_rss_mb,
    ratios,
    run_isolated,
)

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
    texts, new_tokens, prompt_tokens = [], 0, 0
    started = time.perf_counter()
    for offset in range(0, len(conversations), batch_size):
        chunk = conversations[offset : offset + batch_size]
        prompts = [
            tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chunk
        ]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        prompt_tokens += int(enc["attention_mask"].sum())
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
    elapsed = time.perf_counter() - started
    return texts, elapsed, new_tokens, prompt_tokens, sum(p.numel() for p in model.parameters())


def run_backend(model_path: str, conversations, keys, params: GenParams, batch_size: int, stop: bool):
    generator = HFGenerator(HFModelConfig(model=model_path, batch_size=batch_size), progress=False)
    started = time.perf_counter()
    outs = generator.generate(conversations, params, keys=keys, stop=stop_check("binary") if stop else None)
    elapsed = time.perf_counter() - started
    prompt_tokens = sum(o.n_prompt_tokens or 0 for o in outs)
    n_params = sum(p.numel() for p in generator.model.parameters())
    new_tokens = sum(o.n_new_tokens for o in outs)
    return [o.text for o in outs], elapsed, new_tokens, generator.dtype_name, prompt_tokens, n_params


def run_quantization_arm(
    model_path: str, conversations, keys, params, batch_size: int, quantization: str, threads: int
):
    """One engine run in fp32 compute, on fp32 or 4-bit weights; meant for a fresh process."""
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING)
    generator = HFGenerator(
        HFModelConfig(model=model_path, batch_size=batch_size, dtype="float32", quantization=quantization),
        progress=False,
    )
    started = time.perf_counter()
    model = generator.model
    load_s = time.perf_counter() - started
    started, cpu_started = time.perf_counter(), time.process_time()
    outs = generator.generate(conversations, params, keys=keys, stop=stop_check("binary"))
    seconds = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started  # all threads: steadier than wall on a shared machine
    new_tokens = sum(o.n_new_tokens for o in outs)
    return {
        "quantization": generator.quantization["method"],
        "dtype": generator.dtype_name,
        "load_s": round(load_s, 2),
        "seconds": round(seconds, 2),
        "cpu_s": round(cpu_s, 1),
        "new_tokens": new_tokens,
        "new_tokens_per_s": round(new_tokens / seconds, 1),
        "prompt_tokens": sum(o.n_prompt_tokens or 0 for o in outs),
        "weights_mb": round(model.get_memory_footprint() / 2**20),
        "params": sum(p.numel() for p in model.parameters()),
        "peak_rss_mb": peak_rss_mb(),
        "texts": [o.text for o in outs],
    }


def compare_quantization(args, items: list[dict], conversations, params: GenParams) -> None:
    """--quantization-arms: the engine on fp32 weights against 4-bit weights; prints the report."""
    keys = [i["id"] for i in items]
    threads = torch.get_num_threads()
    setup = (args.model, conversations, keys, params, args.batch_size[0])
    arms = {
        name: run_isolated(run_quantization_arm, *setup, quantization, threads)
        for name, quantization in (("fp32", "none"), ("4bit", "4bit"))
    }
    full, quantized = arms["fp32"], arms["4bit"]
    n_params = full["params"]  # a 4-bit model packs two weights into one element: count the fp32 one's
    rates = matmul_rates(threads, repeats=args.repeats)
    replies, conclusions = {}, {}
    for name, arm in arms.items():
        replies[name] = arm.pop("texts")
        parsed = [parse_reply("binary", t, i) for t, i in zip(replies[name], items, strict=True)]
        arm["parse"] = dict(Counter(r.status for r in parsed))
        conclusions[name] = [r.prediction for r in parsed]
        arm |= of_limit(
            arm["prompt_tokens"], arm["new_tokens"], n_params, arm["seconds"], rates["float32_large"]
        )
    same_text = sum(a == b for a, b in zip(replies["fp32"], replies["4bit"], strict=True))
    same_conclusion = sum(a == b for a, b in zip(conclusions["fp32"], conclusions["4bit"], strict=True))
    report = {
        "prompts": len(items),
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size[0],
        "threads": threads,
        "params": n_params,
        "cpu": cpu_info(),
        "matmul_gflop_per_s": rates,
        **arms,
        "identical_replies": same_text,
        "same_conclusion": same_conclusion,
        "ratio_4bit_over_fp32": ratios(
            quantized, full, ("seconds", "cpu_s", "new_tokens_per_s", "peak_rss_mb", "weights_mb")
        ),
    }
    text = json.dumps(report, indent=2)
    print(text)
    for name, arm in arms.items():
        print(
            f"{name} weights: {arm['seconds']:.1f}s for {arm['new_tokens']} new tokens "
            f"({arm['new_tokens_per_s']:.1f}/s, {arm['of_limit']:.1%} of the fp32 limit), load "
            f"{arm['load_s']:.1f}s, weights {arm['weights_mb']} MB, peak RSS {arm['peak_rss_mb']} MB"
        )
    print(f"identical replies {same_text}/{len(items)}, same conclusion {same_conclusion}/{len(items)}")
    if args.json:
        args.json.write_text(text + "\n")


def of_limit(prompt_tokens: int, new_tokens: int, n_params: int, seconds: float, rate_gflops: float) -> dict:
    """The ideal time at the measured matmul rate, and the run's fraction of it."""
    ideal = (prompt_tokens + new_tokens) * 2.0 * n_params / (rate_gflops * 1e9)
    return {
        "prompt_tokens": prompt_tokens,
        "ideal_seconds": round(ideal, 2),
        "of_limit": round(ideal / seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="results/default/models/smollm2-135m-instruct")
    parser.add_argument("--data", default="resources/difference_awareness")
    parser.add_argument("--template", default="config/prompts/binary.txt")
    parser.add_argument("--n", type=int, default=64, help="number of prompts")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="DART's budget is 256")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32], help="backend batch sizes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="matmul timings per shape (best of)")
    parser.add_argument(
        "--quantization-arms",
        action="store_true",
        help="compare the engine on fp32 weights with 4-bit NF4 weights instead of the baseline",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    items = pick_prompts(args.data, args.n, args.seed)
    template = load_template(args.template)
    conversations = [build_messages(i, template) for i in items]
    params = GenParams(max_new_tokens=args.max_new_tokens, temperature=0.2, top_p=0.9, seed=args.seed)
    if args.quantization_arms:
        compare_quantization(args, items, conversations, params)
        return

    base_texts, base_s, base_tok, base_prompt, n_params = run_baseline(args.model, conversations, params)

    def parsed(texts):
        return dict(Counter(parse_reply("binary", t, i).status for t, i in zip(texts, items, strict=True)))

    report = {
        "prompts": len(items),
        "max_new_tokens": args.max_new_tokens,
        "threads": torch.get_num_threads(),
        "params": n_params,
        "cpu": cpu_info(),
        "baseline": {"seconds": round(base_s, 2), "new_tokens": base_tok, "parse": parsed(base_texts)},
        "backend": [],
    }
    keys = [i["id"] for i in items]
    work = []  # (prompt tokens, new tokens, parameters, seconds) of each backend run
    for size in args.batch_size:
        texts, seconds, tokens, dtype, prompt, n = run_backend(
            args.model, conversations, keys, params, size, stop=True
        )
        work.append((prompt or base_prompt, tokens, n, seconds))
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
    # Measured after the generation runs, on the same threads, so the limit is this machine's now.
    rates = matmul_rates(torch.get_num_threads(), repeats=args.repeats)
    report["matmul_gflop_per_s"] = rates
    report["baseline"] |= of_limit(base_prompt, base_tok, n_params, base_s, rates["float32_large"])
    for run, done in zip(report["backend"], work, strict=True):
        run |= of_limit(*done, rates.get(f"{run['dtype']}_large", rates["float32_large"]))
    print(json.dumps(report, indent=2))
    cpu = report["cpu"]
    print(
        f"CPU {cpu['model']}, {report['threads']} threads, "
        f"AVX-512-BF16 {'yes' if cpu['avx512_bf16'] else 'no'}; matmul GFLOP/s: "
        + ", ".join(f"{k} {v}" for k, v in rates.items())
    )
    print(f"baseline {base_s:.1f}s (fp32): {report['baseline']['of_limit']:.1%} of the limit")
    for run in report["backend"]:
        print(
            f"baseline {base_s:.1f}s, backend (batch {run['batch_size']}, {run['dtype']}) "
            f"{run['seconds']:.1f}s: {run['speedup']:.2f}x faster; {run['of_limit']:.1%} of the limit "
            f"({run['prompt_tokens']} prompt + {run['new_tokens']} new tokens x 2 x "
            f"{n_params / 1e6:.0f}M params = {run['ideal_seconds']:.1f}s at the measured rate)"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
