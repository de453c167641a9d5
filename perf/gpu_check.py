"""A prepared check of the pipeline's QLoRA path (issue 31), on a tiny random Llama built at run time.

Run it through perf/gpu_check.sh (which installs a carried bitsandbytes wheel and caps the time).
Everything goes through the project's own code, offline, on one CUDA GPU, or with ``--device
cpu`` (or GPU_CHECK_DEVICE=cpu) the same code path on the CPU, GPU-only measurements skipped:

1. ``qlora_train``: a few QLoRA steps with :func:`harmdrift.train.run.train_adapter` and
   ``TrainConfig(quantization="4bit", dtype="auto")``: the base loads as bitsandbytes NF4 with
   double quantisation, computing in the resolved dtype (bf16 on a GPU that has it, fp32 on a
   CPU); ``train_config.json``'s quantization record is checked against that;
2. ``generate_answers``: the rule function :func:`harmdrift.generate.rules.generate_answers`
   (``HFChatBackend`` over ``HFGenerator``) on the 4-bit base with the adapter (not merged), in
   the binary framing: every record must carry forced-choice YES/NO scores, and its ``decoding``
   record the device, dtype and quantization record training used (same arithmetic);
3. ``speed_nf4`` / ``speed_<dtype>``: tokens/s of :class:`harmdrift.lm.engine.HFGenerator` after
   a warm-up, 4-bit + adapter (bitsandbytes ``Linear4bit`` layers under LoRA) against the
   unquantised comparison arm (bf16 on a GPU, fp32 on a CPU; adapter merged), with each
   arm's weights footprint;
4. ``seeded_streams``: the same prompts sampled (at STREAM_TEMPERATURE) with batch sizes 1, 3
   and 8 must give each item the same reply. fp32 is the pass/fail check; bf16 (GPU only) and
   NF4 are reported (padding changes low-precision logits a little, which can flip a near-tie
   token);
5. per step: seconds, peak GPU memory (``torch.cuda.max_memory_allocated``, GPU only) and the
   process's peak RSS.

Writes one JSON summary to $OUT/gpu_check.json when OUT is set, else ./gpu_check.json, after
every step (so a timeout still leaves what finished). Exit status: 0 when every step passed,
1 when one failed, 2 when the device is cuda and there is no CUDA device.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
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
# Work per device: the GPU's sizes measure throughput; the CPU's run the same path in 25-30 s
# on 2 idle cores (2026-12-06), without the bf16 seeded-stream arm (bf16 is an opt-in on
# CPUs, and the slowest arm there).
SIZES = {
    "cuda": {"train_examples": 48, "train_batch": 8, "items": 32, "speed_prompts": 64, "speed_batch": 32,
             "speed_tokens": 64, "stream_arms": ("float32", "bfloat16", "nf4")},
    "cpu": {"train_examples": 16, "train_batch": 4, "items": 12, "speed_prompts": 16, "speed_batch": 8,
            "speed_tokens": 32, "stream_arms": ("float32", "nf4")},
}  # fmt: skip
# The seeded-stream check samples at this temperature. The random model's logits are nearly
# flat (std 0.44 over 2020 tokens): at 0.8 the 0.95 nucleus held ~1750 tokens, and fp32's
# batch-shape rounding (logits 1e-6 apart between batch 1 and 3, measured on a 2-core CPU)
# moved one draw in 288. At 0.1 the top token has about half the mass and the nucleus ~25
# tokens, like a chat model's replies: no draw moved in 72 items x 24 tokens, and 2 in 3
# items still sampled away from the greedy reply (2026-12-06, CPU, fp32).
STREAM_TEMPERATURE = 0.1


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


def peak_rss_mb() -> float:
    """The process's peak RSS since the last :func:`reset_peak_rss` (Linux), else since it started."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def run_step(summary: dict, name: str, fn) -> None:
    """Run one step, record its result, time and peak memory, and rewrite the summary."""
    import torch

    on_gpu = summary["device"] == "cuda"
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    reset_peak_rss()
    started = time.perf_counter()
    try:
        result = {"ok": True, **fn()}
    except Exception as err:  # a failed step is a finding; the other steps still run
        result = {"ok": False, "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["peak_rss_mb"] = peak_rss_mb()
    memory = f"peak RSS {result['peak_rss_mb']} MB"
    if on_gpu:
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        summary["peak_gpu_mb"] = max(summary.get("peak_gpu_mb", 0.0), result["peak_gpu_mb"])
        memory = f"peak GPU {result['peak_gpu_mb']} MB, {memory}"
    summary["steps"][name] = result
    status = "ok" if result["ok"] else f"FAILED ({result['error']})"
    print(f"gpu_check: {name}: {status} in {result['seconds']} s, {memory}", flush=True)
    write(summary)


def default_config() -> dict:
    """config/config.yaml with the schema's defaults filled in (no disk checks)."""
    import yaml

    from harmdrift.config import apply_schema

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    apply_schema(config, ROOT / "config" / "schema.yaml")
    return config


def qlora_train(model_dir: str, work: Path, device: str, compute_dtype: str, sizes: dict) -> dict:
    from dataclasses import replace

    import torch

    from harmdrift.config import train_config
    from harmdrift.core.io import write_jsonl
    from harmdrift.core.runtime import quantization_record
    from harmdrift.train.run import train_adapter

    rng = random.Random(1)
    labels = [rng.choice(["YES", "NO"]) for _ in range(sizes["train_examples"])]
    rows = [
        {
            "id": f"ex{i}",
            "weight": 1.0 + (i % 3),
            "messages": [
                {"role": "user", "content": sentence(rng, 10, 80)},
                {"role": "assistant", "content": f"{sentence(rng, 5, 30)} Conclusion: {label}"},
            ],
        }
        for i, label in enumerate(labels)
    ]
    write_jsonl(work / "examples.jsonl", rows)
    config = default_config()
    student = {**config["student"], "quantization": "4bit", "dtype": "auto", "device": device}
    cfg = replace(
        train_config(config["training"], student),
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.05,
        learning_rate=1e-3,
        epochs=1.0,
        batch_size=sizes["train_batch"],
        grad_accum=1,
        max_length=256,
        gradient_checkpointing=True,
        max_steps=6,
        logging_steps=1,
    )
    if (cfg.quantization, cfg.dtype) != ("4bit", "auto"):
        raise RuntimeError(f"train_config did not take the student's 4bit/auto: {cfg}")
    out = train_adapter(work / "examples.jsonl", model_dir, work / "adapter", cfg, progress=False)
    meta = json.loads((work / "adapter" / "train_config.json").read_text())
    if out["steps"] != cfg.max_steps or not math.isfinite(out["final_loss"]):
        raise RuntimeError(f"expected {cfg.max_steps} steps and a finite loss, got {out}")
    if meta.get("device") != device:
        raise RuntimeError(f"trained on {meta.get('device')}, not {device}")
    record, resolved = meta.get("quantization"), meta["config"].get("dtype_resolved")
    expected = quantization_record("4bit", getattr(torch, compute_dtype))
    if record != expected or resolved != compute_dtype:
        raise RuntimeError(
            f"train_config.json: quantization {record}, dtype_resolved {resolved}; expected "
            f"{expected} computing in {compute_dtype}"
        )
    return {
        **out,
        "dtype_resolved": resolved,
        "quantization": record,
        "trainable_params": meta.get("trainable_params"),
        "total_params": meta.get("total_params"),
    }


def split_items(n: int) -> list[dict]:
    """Binary-framing items in the split layout (the fields generate.answers copies)."""
    rng = random.Random(4)
    return [
        {
            "id": f"D1-{'diff' if i % 2 else 'equal'}-{i}",
            "benchmark": "D1",
            "category": "descriptive",
            "condition": "diff" if i % 2 else "equal",
            "scenario_id": str(i),
            "gold_label": "YES" if i % 2 else "NO",
            "correct_option": None,
            "split": "test",
            "reconstructed": False,
            "question": sentence(rng, 10, 60) + "?",
        }
        for i in range(n)
    ]


def generate_answers(model_dir: str, work: Path, device: str, trained: dict | None, sizes: dict) -> dict:
    """The pipeline's student generation (rule generate_answers), 4-bit base + adapter, binary framing."""
    from harmdrift.core.io import read_jsonl, write_jsonl
    from harmdrift.generate.rules import generate_answers as generate_answers_rule

    config = default_config()
    qlora = {"quantization": "4bit", "dtype": "auto", "device": device}
    student = {**config["student"], "model": model_dir, **qlora}
    generation = {**config["generation"], "batch_size": 8, "max_new_tokens": {"binary": 32}, "cache": False}
    items = split_items(sizes["items"])
    write_jsonl(work / "items.jsonl", items)
    adapter = str(work / "adapter") if trained else None
    summary = generate_answers_rule(
        split_items=str(work / "items.jsonl"),
        template=str(ROOT / "config" / "prompts" / "binary.txt"),
        answers=str(work / "answers.jsonl"),
        model="m_int" if adapter else "m0",
        framing="binary",
        student=student,
        generation=generation,
        load_path=model_dir,
        adapter=adapter,
    )
    records = read_jsonl(work / "answers.jsonl")
    problems = []
    if len(records) != len(items):
        problems.append(f"{len(records)} records for {len(items)} items")
    for record in records:
        scores = record.get("forced_scores") or {}
        if sorted(scores) != ["NO", "YES"] or not all(math.isfinite(v) for v in scores.values()):
            problems.append(f"{record['id']}: forced_scores {scores}")
        if record.get("forced_prediction") not in ("YES", "NO"):
            problems.append(f"{record['id']}: forced_prediction {record.get('forced_prediction')}")
    decodings = {json.dumps(r["decoding"], sort_keys=True) for r in records}
    if len(decodings) != 1:
        problems.append(f"{len(decodings)} different decoding records")
    decoding = records[0]["decoding"] if records else {}
    if decoding.get("device") != device:
        problems.append(f"decoding.device {decoding.get('device')}, not {device}")
    if trained:  # the adapter is evaluated on the arithmetic it was trained with
        for key, trained_key in (("quantization", "quantization"), ("dtype", "dtype_resolved")):
            if decoding.get(key) != trained[trained_key]:
                problems.append(f"decoding.{key} {decoding.get(key)} != training's {trained[trained_key]}")
    elif (decoding.get("quantization") or {}).get("method") != "bitsandbytes-4bit":
        problems.append(f"decoding.quantization {decoding.get('quantization')}")
    if problems:
        raise RuntimeError("; ".join(problems[:8]))
    return {
        **summary,
        "adapter": "the QLoRA adapter just trained" if adapter else "none (training failed)",
        "decoding": decoding,
        "new_tokens": sum(r["n_new_tokens"] for r in records),
    }


def load(model_dir: str, adapter: str | None, batch_size: int, device: str, **kwargs):
    from harmdrift.lm.engine import HFGenerator, HFModelConfig

    cfg = HFModelConfig(model=model_dir, adapter=adapter, device=device, batch_size=batch_size, **kwargs)
    return HFGenerator(cfg, progress=False)


def layer_counts(model) -> dict:
    """bitsandbytes 4-bit linears and LoRA-wrapped ones (an unmerged adapter on a 4-bit base)."""
    names = [(type(m).__module__, type(m).__name__) for m in model.modules()]
    return {
        "linear4bit_layers": sum(n == "Linear4bit" and mod.startswith("bitsandbytes") for mod, n in names),
        "lora_layers": sum(mod.startswith("peft.tuners.lora") and n.startswith("Linear") for mod, n in names),
    }


def generate_speed(model_dir: str, adapter: str | None, device: str, sizes: dict, **kwargs) -> dict:
    """Tokens/s of the engine (sampling), after a warm-up, and the loaded weights' footprint."""
    from harmdrift.core.decoding import GenParams

    generator = load(model_dir, adapter, sizes["speed_batch"], device, **kwargs)
    started = time.perf_counter()
    model = generator.model
    load_s = time.perf_counter() - started
    counts = layer_counts(model)
    if kwargs.get("quantization") == "4bit":
        if not counts["linear4bit_layers"]:
            raise RuntimeError("quantization 4bit loaded no bitsandbytes Linear4bit layer")
        if adapter and not counts["lora_layers"]:
            raise RuntimeError("the adapter on the 4-bit base is not there (merged or not loaded)")
    params = GenParams(max_new_tokens=sizes["speed_tokens"], temperature=0.7, top_p=0.9, seed=3)
    generator.generate(conversations(4, 9), GenParams(max_new_tokens=4, seed=3), keys=list("abcd"))
    convs = conversations(sizes["speed_prompts"], 2)
    started = time.perf_counter()
    outs = generator.generate(convs, params, keys=[f"q{i}" for i in range(len(convs))])
    seconds = time.perf_counter() - started
    new, prompt = sum(o.n_new_tokens for o in outs), sum(o.n_prompt_tokens or 0 for o in outs)
    return {
        "dtype": generator.dtype_name,
        "device": generator.device,
        "quantization": generator.quantization,
        **counts,
        "weights_mb": round(model.get_memory_footprint() / 2**20, 2),
        "load_seconds": round(load_s, 2),
        "prompts": len(convs),
        "prompt_tokens": prompt,
        "new_tokens": new,
        "decode_seconds": round(seconds, 3),
        "new_tokens_per_s": round(new / seconds, 1),
        "tokens_per_s": round((new + prompt) / seconds, 1),
        "finish_reasons": sorted({o.finish_reason for o in outs}),
    }


def seeded_streams(model_dir: str, adapter: str | None, device: str, arms: tuple[str, ...]) -> dict:
    """Each item's reply must not depend on the batch it is decoded in (fp32 strict)."""
    from harmdrift.core.decoding import GenParams

    convs = conversations(12, 5)
    params = GenParams(max_new_tokens=24, temperature=STREAM_TEMPERATURE, top_p=0.95, seed=17)
    keys = [f"item{i}" for i in range(len(convs))]
    report, failed = {"temperature": STREAM_TEMPERATURE}, []
    settings = {
        "float32": {"dtype": "float32"},
        "bfloat16": {"dtype": "bfloat16"},
        "nf4": {"quantization": "4bit"},
    }
    for label in arms:
        kwargs = settings[label]
        try:
            replies = {}
            for size in (1, 3, 8):
                outs = load(model_dir, adapter, size, device, **kwargs).generate(convs, params, keys=keys)
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default=os.environ.get("GPU_CHECK_DEVICE", "cuda"),
        help="cuda (default; the check a lent GPU runs) or cpu (the same path here, GPU-only "
        "measurements skipped); default from GPU_CHECK_DEVICE",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    device = parse_args(argv).device
    if device == "cpu":
        # Every part resolves device auto (train_adapter does) to the CPU, even on a GPU machine.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    summary: dict = {
        "ok": False,
        "device": device,
        "steps": {},
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
    }
    if device == "cuda":
        if not torch.cuda.is_available():
            summary["error"] = (
                f"no CUDA device: torch.cuda.is_available() is False (torch {torch.__version__}, "
                f"CUDA build {torch.version.cuda}); this check needs one GPU (--device cpu runs "
                "the same path on the CPU)"
            )
            print(f"gpu_check: {summary['error']}", file=sys.stderr)
            write(summary)
            return 2
        torch.cuda.init()
        summary |= {
            "gpu": torch.cuda.get_device_name(0),
            "bf16_supported": torch.cuda.is_bf16_supported(),
            "gpu_memory_gb": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
        }
    else:
        summary |= {"cpu_threads": torch.get_num_threads()}
    import accelerate
    import peft
    import transformers

    from harmdrift.core.runtime import pick_dtype

    # What dtype: auto resolves to here: the compute dtype of the 4-bit weights and the
    # unquantised comparison arm (bf16 on a GPU that has it, fp32 on a CPU).
    compute_dtype = str(pick_dtype("auto", device, allow_fp16=False)).replace("torch.", "")
    summary |= {
        "compute_dtype": compute_dtype,
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
    where = summary.get("gpu", f"CPU, {summary.get('cpu_threads')} threads")
    print(
        f"gpu_check: {where}, torch {torch.__version__}, bitsandbytes {summary['bitsandbytes']}, "
        f"compute dtype {compute_dtype}",
        flush=True,
    )
    sizes = SIZES[device]
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        model_dir = build_tiny_llama(work / "tiny_llama")
        adapter = str(work / "adapter")
        run_step(summary, "qlora_train", lambda: qlora_train(model_dir, work, device, compute_dtype, sizes))
        trained = summary["steps"]["qlora_train"] if summary["steps"]["qlora_train"]["ok"] else None
        use = adapter if trained else None  # without an adapter the engine checks still say something
        summary["generation_adapter"] = (
            "the QLoRA adapter just trained" if trained else "none (training failed)"
        )
        run_step(
            summary, "generate_answers", lambda: generate_answers(model_dir, work, device, trained, sizes)
        )
        for arm, kwargs in (("nf4", {"quantization": "4bit"}), (compute_dtype, {"dtype": compute_dtype})):
            run_step(
                summary, f"speed_{arm}", lambda kw=kwargs: generate_speed(model_dir, use, device, sizes, **kw)
            )
        arms = sizes["stream_arms"]
        run_step(summary, "seeded_streams", lambda: seeded_streams(model_dir, use, device, arms))
    steps = summary["steps"]
    if steps["speed_nf4"]["ok"] and steps[f"speed_{compute_dtype}"]["ok"]:
        nf4, full = steps["speed_nf4"], steps[f"speed_{compute_dtype}"]
        summary["nf4_vs_" + compute_dtype] = {
            "weights_ratio": round(nf4["weights_mb"] / full["weights_mb"], 3),
            "new_tokens_per_s_ratio": round(nf4["new_tokens_per_s"] / full["new_tokens_per_s"], 3),
        }
    summary["peak_rss_mb"] = max(step["peak_rss_mb"] for step in steps.values())
    summary["ok"] = all(step["ok"] for step in steps.values())
    write(summary)
    print(f"gpu_check: {'all steps passed' if summary['ok'] else 'FAILED'}; summary in {SUMMARY_PATH}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
