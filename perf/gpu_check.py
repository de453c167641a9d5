"""A prepared check of the GPU paths (QLoRA on one GPU), on a tiny random Llama built at run time.

Run it through perf/gpu_check.sh (which installs a carried bitsandbytes wheel and caps the time).
Everything goes through the project's own code, offline:

1. ``qlora_train``: a few QLoRA steps (bitsandbytes NF4 base, bf16 compute) with
   :func:`harmdrift.train.run.train_adapter` and ``TrainConfig(quantization="4bit")``;
2. ``generate_nf4`` / ``generate_bf16``: generation through :class:`harmdrift.lm.engine.HFGenerator`
   with the trained adapter, 4-bit and bf16, with tokens/s (after a warm-up);
3. ``seeded_streams``: the same prompts decoded with batch sizes 1, 3 and 8 must give each item
   the same reply. fp32 is the pass/fail check; bf16 and NF4 are reported (padding changes
   low-precision logits a little, which can flip a near-tie token);
4. peak GPU memory (``torch.cuda.max_memory_allocated``) per step and overall.

Writes one JSON summary to $OUT/gpu_check.json when OUT is set, else ./gpu_check.json, after
every step (so a timeout still leaves what finished). Exit status: 0 when every step passed,
1 when one failed, 2 without a CUDA device.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SPECIALS = ["<pad>", "<eos>", "<unk>", "<user>", "<assistant>", "<system>"]
WORDS = "Conclusion: YES NO the a groups are treated same differently because law fact answer is".split()
VOCAB = SPECIALS + WORDS + [f"w{i}" for i in range(2000)]
SUMMARY_PATH = Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else Path("gpu_check.json")


def write(summary: dict) -> None:
    SUMMARY_PATH.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY_PATH.write_text(json.dumps(summary, indent=2) + "\n")


def build_tiny_llama(folder: Path, seed: int = 0) -> str:
    """A 4-layer random Llama (GQA, tied embeddings) with a word-level tokenizer and chat template.

    Dimensions are multiples of 64 so bitsandbytes quantises every projection in whole blocks.
    """
    from harmdrift.lm.tiny import TinyShape, build_tiny_llama

    shape = TinyShape(
        hidden_size=512,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=1024,
    )
    return build_tiny_llama(folder, VOCAB, shape, seed=seed)


def sentence(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(VOCAB[len(SPECIALS) :]) for _ in range(rng.randint(lo, hi)))


def conversations(n: int, seed: int) -> list[list[dict]]:
    """Chat prompts of varied length (so batches need padding and length sorting matters)."""
    rng = random.Random(seed)
    return [[{"role": "user", "content": sentence(rng, 8, 120)}] for _ in range(n)]


def run_step(summary: dict, name: str, fn) -> None:
    """Run one step, record its result, time and peak GPU memory, and rewrite the summary."""
    import torch

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    try:
        result = {"ok": True, **fn()}
    except Exception as err:  # a failed step is a finding; the other steps still run
        result = {"ok": False, "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    summary["steps"][name] = result
    summary["peak_gpu_mb"] = max(summary.get("peak_gpu_mb", 0.0), result["peak_gpu_mb"])
    status = "ok" if result["ok"] else f"FAILED ({result['error']})"
    print(
        f"gpu_check: {name}: {status} in {result['seconds']} s, peak {result['peak_gpu_mb']} MB", flush=True
    )
    write(summary)


def qlora_train(model_dir: str, work: Path) -> dict:
    from dataclasses import replace

    import yaml

    from harmdrift.config import apply_schema, train_config
    from harmdrift.core.io import write_jsonl
    from harmdrift.train.run import train_adapter

    rng = random.Random(1)
    rows = [
        {
            "id": f"ex{i}",
            "weight": 1.0 + (i % 3),
            "messages": [
                {"role": "user", "content": sentence(rng, 10, 80)},
                {"role": "assistant", "content": f"{sentence(rng, 5, 30)} Conclusion: {label}"},
            ],
        }
        for i, label in enumerate(rng.choice(["YES", "NO"]) for _ in range(48))
    ]
    write_jsonl(work / "examples.jsonl", rows)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    apply_schema(config, ROOT / "config" / "schema.yaml")
    cfg = replace(
        train_config(config["training"], config["student"]),
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.05,
        learning_rate=1e-3,
        epochs=1.0,
        batch_size=8,
        grad_accum=1,
        max_length=256,
        gradient_checkpointing=True,
        dtype="auto",
        quantization="4bit",
        max_steps=6,
        logging_steps=1,
    )
    out = train_adapter(work / "examples.jsonl", model_dir, work / "adapter", cfg, progress=False)
    meta = json.loads((work / "adapter" / "train_config.json").read_text())
    if out["steps"] != cfg.max_steps or not math.isfinite(out["final_loss"]):
        raise RuntimeError(f"expected {cfg.max_steps} steps and a finite loss, got {out}")
    if meta.get("device") != "cuda" or meta["config"].get("quantization") != "4bit":
        raise RuntimeError(
            f"trained on {meta.get('device')} with quantization {meta['config'].get('quantization')}"
        )
    return {
        **out,
        "dtype": meta["config"].get("dtype_resolved"),
        "trainable_params": meta.get("trainable_params"),
        "total_params": meta.get("total_params"),
    }


def load(model_dir: str, adapter: str | None, batch_size: int, **kwargs):
    from harmdrift.lm.engine import HFGenerator, HFModelConfig

    cfg = HFModelConfig(model=model_dir, adapter=adapter, device="cuda", batch_size=batch_size, **kwargs)
    return HFGenerator(cfg, progress=False)


def generate_speed(model_dir: str, adapter: str | None, **kwargs) -> dict:
    """Tokens/s of the engine on 64 prompts (batch 32, 64 new tokens, sampling), after a warm-up."""
    from harmdrift.core.decoding import GenParams

    generator = load(model_dir, adapter, 32, **kwargs)
    n4bit = sum(type(m).__name__ == "Linear4bit" for m in generator.model.modules())
    if kwargs.get("quantization") == "4bit" and not n4bit:
        raise RuntimeError("quantization 4bit loaded no bitsandbytes Linear4bit layer")
    params = GenParams(max_new_tokens=64, temperature=0.7, top_p=0.9, seed=3)
    generator.generate(conversations(4, 9), GenParams(max_new_tokens=4, seed=3), keys=list("abcd"))
    convs = conversations(64, 2)
    started = time.perf_counter()
    outs = generator.generate(convs, params, keys=[f"q{i}" for i in range(len(convs))])
    seconds = time.perf_counter() - started
    new, prompt = sum(o.n_new_tokens for o in outs), sum(o.n_prompt_tokens or 0 for o in outs)
    return {
        "dtype": generator.dtype_name,
        "device": generator.device,
        "linear4bit_layers": n4bit,
        "prompts": len(convs),
        "prompt_tokens": prompt,
        "new_tokens": new,
        "decode_seconds": round(seconds, 3),
        "new_tokens_per_s": round(new / seconds, 1),
        "tokens_per_s": round((new + prompt) / seconds, 1),
        "finish_reasons": sorted({o.finish_reason for o in outs}),
    }


def seeded_streams(model_dir: str, adapter: str | None) -> dict:
    """Each item's reply must not depend on the batch it is decoded in (fp32 strict)."""
    from harmdrift.core.decoding import GenParams

    convs, params = conversations(12, 5), GenParams(max_new_tokens=24, temperature=0.8, top_p=0.95, seed=17)
    keys = [f"item{i}" for i in range(len(convs))]
    report, failed = {}, []
    for label, kwargs in {
        "float32": {"dtype": "float32"},
        "bfloat16": {"dtype": "bfloat16"},
        "nf4": {"quantization": "4bit"},
    }.items():
        try:
            replies = {}
            for size in (1, 3, 8):
                outs = load(model_dir, adapter, size, **kwargs).generate(convs, params, keys=keys)
                replies[size] = [o.text for o in outs]
        except Exception as err:
            report[label] = {"error": f"{type(err).__name__}: {err}"}
            failed.append(label)
            continue
        same = [all(replies[s][i] == replies[1][i] for s in replies) for i in range(len(convs))]
        report[label] = {
            "items": len(convs),
            "same_in_every_batch": sum(same),
            "batch_sizes": list(replies),
            "differing_items": [keys[i] for i, ok in enumerate(same) if not ok],
        }
        if label == "float32" and not all(same):
            failed.append(label)
    if failed:
        raise RuntimeError(f"seeded-stream check failed for {failed}: {json.dumps(report)}")
    return report


def main() -> int:
    import torch

    summary: dict = {"ok": False, "steps": {}, "torch": torch.__version__, "cuda_build": torch.version.cuda}
    if not torch.cuda.is_available():
        summary["error"] = (
            f"no CUDA device: torch.cuda.is_available() is False (torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda}); this check needs one GPU"
        )
        print(f"gpu_check: {summary['error']}", file=sys.stderr)
        write(summary)
        return 2
    torch.cuda.init()
    import accelerate
    import peft
    import transformers

    summary |= {
        "gpu": torch.cuda.get_device_name(0),
        "bf16_supported": torch.cuda.is_bf16_supported(),
        "gpu_memory_gb": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "accelerate": accelerate.__version__,
    }
    try:
        import bitsandbytes

        summary["bitsandbytes"] = bitsandbytes.__version__
    except Exception as err:  # the 4-bit steps then fail, each saying why
        summary["bitsandbytes"] = f"not importable: {type(err).__name__}: {err}"
    try:
        import matplotlib  # noqa: F401  (train_adapter draws loss.png with it)
    except ImportError:
        import harmdrift.train.run

        harmdrift.train.run.plot_loss = lambda *args, **kwargs: None
        summary["note"] = "matplotlib is missing here: loss.png was not drawn"
    print(
        f"gpu_check: {summary['gpu']}, torch {torch.__version__}, bitsandbytes {summary['bitsandbytes']}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        model_dir = build_tiny_llama(work / "tiny_llama")
        adapter = str(work / "adapter")
        run_step(summary, "qlora_train", lambda: qlora_train(model_dir, work))
        trained = summary["steps"]["qlora_train"]["ok"]
        use = adapter if trained else None  # without an adapter the engine checks still say something
        summary["generation_adapter"] = (
            "the QLoRA adapter just trained" if trained else "none (training failed)"
        )
        run_step(summary, "generate_nf4", lambda: generate_speed(model_dir, use, quantization="4bit"))
        run_step(summary, "generate_bf16", lambda: generate_speed(model_dir, use, dtype="bfloat16"))
        run_step(summary, "seeded_streams", lambda: seeded_streams(model_dir, use))
    summary["ok"] = all(step["ok"] for step in summary["steps"].values())
    write(summary)
    print(f"gpu_check: {'all steps passed' if summary['ok'] else 'FAILED'}; summary in {SUMMARY_PATH}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
