"""Benchmark: harmdrift's LoRA training path against a plain baseline, same data, same process.

Both runs train a fresh LoRA adapter (same rank, targets and optimiser settings) on the same
chat examples for the same number of optimizer steps. The baseline trains the way a first
script usually does: fixed batches in file order, every sequence padded to the longest one in
the whole dataset (``padding="max_length"``), fp32, the model's own token-mean loss. The path
under test is :func:`harmdrift.train.run.train_adapter`: dynamic left padding, length-grouped
batches, logits only where replies are, and auto dtype (fp32 on a CPU, bf16 on GPUs that have it).

Throughput counts real (non-pad) tokens per second of training; model loading is left out.
``cpu_s`` is the arm's CPU time over all threads, loading included (on a shared machine it moves
less than the wall time).
Each run has a fresh process of its own, so its peak RSS (model, activations, logits, optimiser
and allocator, loading included) is its own. Prints a JSON report and a one-line ratio; nothing
is asserted (machines are noisy). ``--dtype bfloat16`` opts into bf16 (auto is fp32 on a CPU).

``--quantization-arms`` compares LoRA on an fp32 base against QLoRA instead (the base's weights
in bitsandbytes' 4-bit NF4 with double quantisation, computing in fp32), both through
:func:`~harmdrift.train.run.train_adapter` on the same examples for the same steps, each in a
process of its own; ``--dtype`` does not apply (both arms compute in float32). Per arm it reports
peak RSS, real tokens/s, wall and CPU time and final loss, and the 4-bit/fp32 ratio of each.

    python perf/bench_training.py --model results/default/models/smollm2-135m-instruct --n 64 --steps 4
    python perf/bench_training.py --model results/default/models/smollm2-135m-instruct --quantization-arms
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml
from bench_pipeline import peak_rss_mb, ratios, run_isolated  # perf/ is on sys.path when run as a script

from harmdrift.config import apply_schema, train_config
from harmdrift.core.io import write_jsonl
from harmdrift.data.load import load_benchmarks
from harmdrift.train.config import TrainConfig
from harmdrift.train.examples import IGNORE_INDEX, encode_examples, load_examples
from harmdrift.train.model import attach_adapter, load_base_model
from harmdrift.train.run import train_adapter

OPENINGS = (
    "The question asks whether the two groups named in it should be treated alike.",
    "This item turns on a factual or normative difference between the groups it mentions.",
    "Reading the options, the key issue is whether a relevant distinction exists here.",
)
DIFF_REASONS = (
    "The facts or the law behind the question make the groups differ, so answering well means naming that.",
    "Here a real difference matters, and ignoring it would give a less accurate answer.",
)
EQUAL_REASONS = (
    "Nothing relevant separates the groups, so equal treatment is the right answer.",
    "No fact or rule here justifies treating the groups differently.",
)


def synthetic_reply(item: dict, rng: random.Random) -> str:
    """A short two-sentence analysis plus the conclusion line, in DART's answer format."""
    reasons = DIFF_REASONS if item["gold_label"] == "YES" else EQUAL_REASONS
    return f"{rng.choice(OPENINGS)} {rng.choice(reasons)}\nConclusion: {item['gold_label']}"


def build_examples(data_dir: str, benchmarks: list[str], n: int, seed: int) -> list[dict]:
    """n chat examples drawn from the real benchmark questions, so prompt lengths vary as in Stage I."""
    rng = random.Random(seed)
    items = rng.sample(load_benchmarks(data_dir, benchmarks), n)
    return [
        {
            "id": item["id"],
            "messages": [
                {"role": "user", "content": item["question"]},
                {"role": "assistant", "content": synthetic_reply(item, rng)},
            ],
            "weight": 1.0,
        }
        for item in items
    ]


def padded_to_dataset_max(tokenizer, features: list[dict]) -> tuple[list[dict], list[int]]:
    """Pad every feature on the right to the longest sequence of the whole dataset."""
    longest = max(len(f["input_ids"]) for f in features)
    padded = tokenizer.pad(
        [{"input_ids": f["input_ids"]} for f in features], padding="max_length", max_length=longest
    )
    rows = []
    for i, feature in enumerate(features):
        labels = feature["labels"] + [IGNORE_INDEX] * (longest - len(feature["labels"]))
        rows.append(
            {
                "input_ids": padded["input_ids"][i],
                "attention_mask": padded["attention_mask"][i],
                "labels": labels,
            }
        )
    return rows, [len(f["input_ids"]) for f in features]


def default_training() -> TrainConfig:
    """The default profile's training settings (config/config.yaml, the schema's defaults)."""
    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "config" / "config.yaml").read_text(encoding="utf-8"))
    apply_schema(config, root / "config" / "schema.yaml")
    return train_config(config["training"], config["student"])


def run_baseline(model_path: str, examples_path: str, cfg: TrainConfig, workdir: Path) -> dict:
    """Plain Trainer: file order, fixed batches, padding to the dataset maximum, fp32."""
    from transformers import AutoTokenizer, Trainer, TrainingArguments, default_data_collator

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    features, _ = encode_examples(tokenizer, load_examples(examples_path), cfg.max_length)
    rows, lengths = padded_to_dataset_max(tokenizer, features)
    torch.manual_seed(cfg.seed)
    model = attach_adapter(load_base_model(model_path, cfg, torch.float32, "cpu"), cfg)
    args = TrainingArguments(
        output_dir=str(workdir / "baseline"),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_ratio,
        train_sampling_strategy="sequential",
        save_strategy="no",
        report_to=[],
        logging_steps=cfg.logging_steps,
        disable_tqdm=True,
        use_cpu=True,
        seed=cfg.seed,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=default_data_collator)
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    consumed = cfg.max_steps * cfg.batch_size * cfg.grad_accum
    real = sum(lengths[i % len(lengths)] for i in range(consumed))
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {
        "wall_s": round(wall, 2),
        "real_tokens": real,
        "padded_tokens": consumed * len(rows[0]["input_ids"]),
        "tokens_per_s": round(real / wall, 1),
        "dtype": "float32",
        "final_loss": losses[-1] if losses else None,
    }


def run_harmdrift(model_path: str, examples_path: str, cfg: TrainConfig, workdir: Path) -> dict:
    summary = train_adapter(examples_path, model_path, workdir / "harmdrift", cfg, progress=False)
    meta = json.loads((workdir / "harmdrift" / "train_config.json").read_text())
    return {
        "wall_s": round(summary["wall_s"], 2),
        "real_tokens": meta["train_real_tokens"],
        "tokens_per_s": round(summary["train_tokens_per_s"], 1),
        "dtype": meta["config"]["dtype_resolved"],
        "quantization": meta["quantization"]["method"],
        "final_loss": summary["final_loss"],
    }


ARMS = {"baseline": run_baseline, "harmdrift": run_harmdrift}
# --quantization-arms: the same train_adapter run on an fp32 base and on a 4-bit one.
QUANTIZATION_ARMS = {"lora_fp32": "none", "qlora_4bit": "4bit"}
# The figures compared between the two arms, as 4-bit over fp32.
RATIO_KEYS = ("peak_rss_mb", "tokens_per_s", "wall_s", "cpu_s", "final_loss")


def _run_arm(name: str, model_path: str, examples_path: str, cfg: TrainConfig, workdir: str, threads: int):
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cpu_started = time.process_time()
    result = ARMS[name](model_path, examples_path, cfg, Path(workdir))
    # CPU seconds of every thread, loading included: steadier than wall time on a shared machine.
    result["cpu_s"] = round(time.process_time() - cpu_started, 1)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="results/default/models/smollm2-135m-instruct")
    parser.add_argument("--data-dir", default="resources/difference_awareness")
    parser.add_argument("--benchmarks", nargs="+", default=["D1", "N2", "N3"])
    parser.add_argument("--n", type=int, default=64, help="number of training examples")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps for each run")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=2)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"], help="ours")
    parser.add_argument("--max-length", type=int, default=768, help="as config/config.yaml's training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quantization-arms",
        action="store_true",
        help="compare LoRA on an fp32 base with QLoRA on a 4-bit NF4 base (fp32 compute) instead",
    )
    parser.add_argument("--json", help="also write the report to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)

    cfg = replace(
        default_training(),
        lora_r=args.lora_r,
        lora_alpha=2 * args.lora_r,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_steps=args.steps,
        max_length=args.max_length,
        logging_steps=1,
        seed=args.seed,
        dtype=args.dtype,
    )
    report = {
        "model": args.model,
        "examples": args.n,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "grad_accum": args.grad_accum,
        "lora_r": args.lora_r,
        "threads": args.threads,
    }
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        workdir = Path(tmp)
        examples_path = workdir / "examples.jsonl"
        write_jsonl(examples_path, build_examples(args.data_dir, args.benchmarks, args.n, args.seed))
        if args.quantization_arms:
            for arm, quantization in QUANTIZATION_ARMS.items():
                arm_cfg = replace(cfg, dtype="float32", quantization=quantization)
                arm_dir = workdir / arm
                report[arm] = run_isolated(
                    _run_arm, "harmdrift", args.model, str(examples_path), arm_cfg, str(arm_dir), args.threads
                )
        else:
            arm_args = (args.model, str(examples_path), cfg, str(workdir), args.threads)
            report["baseline"] = run_isolated(_run_arm, "baseline", *arm_args)
            report["harmdrift"] = run_isolated(_run_arm, "harmdrift", *arm_args)
    if args.quantization_arms:
        full, quantized = (report[arm] for arm in QUANTIZATION_ARMS)
        report["ratio_4bit_over_fp32"] = ratios(quantized, full, RATIO_KEYS)
        summary = (
            f"fp32 LoRA vs 4-bit QLoRA: {full['tokens_per_s']:.0f} vs {quantized['tokens_per_s']:.0f} "
            f"real tokens/s, {full['wall_s']:.1f} vs {quantized['wall_s']:.1f} s, peak RSS "
            f"{full['peak_rss_mb']} vs {quantized['peak_rss_mb']} MB, final loss "
            f"{full['final_loss']:.4f} vs {quantized['final_loss']:.4f}"
        )
    else:
        ours, baseline = report["harmdrift"], report["baseline"]
        report["speedup"] = round(ours["tokens_per_s"] / baseline["tokens_per_s"], 2)
        summary = (
            f"training throughput: harmdrift {ours['tokens_per_s']:.0f} vs baseline "
            f"{baseline['tokens_per_s']:.0f} real tokens/s -> {report['speedup']:.2f}x; peak RSS "
            f"harmdrift {ours['peak_rss_mb']} MB vs baseline {baseline['peak_rss_mb']} MB"
        )
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    # A command-line report, like bench_generation.py: stdout is its output.
    print(text)
    print(summary)


if __name__ == "__main__":
    main()
