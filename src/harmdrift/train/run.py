"""Training an adapter with the transformers Trainer: resumable checkpoints, outputs and provenance."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from harmdrift.core.io import file_sha256, share_like_open, write_json
from harmdrift.core.runtime import pick_device, quantization_record
from harmdrift.train.config import TrainConfig
from harmdrift.train.examples import WeightedChatCollator, encode_examples, load_examples
from harmdrift.train.loss import trainer_classes
from harmdrift.train.model import (
    check_train_quantization,
    count_params,
    load_tokenizer,
    prepare_model,
    resolve_train_dtype,
)

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
FINGERPRINT_FILE = "harmdrift_fingerprint.json"


# ---------------------------------------------------------------------------------------------
# Checkpoints, arguments and outputs


def _fingerprint(examples_sha: str, base_model: str, revision, init_adapter, cfg: TrainConfig) -> dict:
    """What a checkpoint must agree with to be resumed (not logging or checkpoint cadence)."""
    settings = cfg.as_dict()
    for name in ("logging_steps", "save_steps"):
        settings.pop(name)
    adapter_sha = None
    if init_adapter:
        weights = Path(init_adapter) / "adapter_model.safetensors"
        adapter_sha = file_sha256(weights) if weights.is_file() else None
    return {
        "examples_sha256": examples_sha,
        "base_model": str(base_model),
        "revision": revision,
        "init_adapter_sha256": adapter_sha,
        "config": settings,
    }


def find_resume_checkpoint(ckpt_dir: Path, fingerprint: dict) -> str | None:
    """The latest checkpoint left by an interrupted run with the same inputs, if any.

    Checkpoints from a run with other data or settings are deleted: resuming them would
    silently mix two trainings.
    """
    from transformers.trainer_utils import get_last_checkpoint

    if not ckpt_dir.is_dir():
        return None
    stamp = ckpt_dir / FINGERPRINT_FILE
    previous = json.loads(stamp.read_text()) if stamp.is_file() else None
    if previous != fingerprint:
        logger.warning("removing checkpoints in %s: they belong to a run with other inputs", ckpt_dir)
        shutil.rmtree(ckpt_dir)
        return None
    return get_last_checkpoint(str(ckpt_dir))


def training_arguments(cfg: TrainConfig, ckpt_dir: Path, dtype, device: str, progress: bool):
    """transformers TrainingArguments for a configuration."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is read as a fraction of all steps
        weight_decay=0.0,
        bf16=dtype == torch.bfloat16,
        # 4-bit models had checkpointing switched on by prepare_model_for_kbit_training already.
        activation_checkpointing=cfg.gradient_checkpointing and cfg.quantization != "4bit",
        # Non-reentrant checkpointing needs no input that requires grad (the embeddings are frozen).
        activation_checkpointing_kwargs={"use_reentrant": False},
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=1,  # resuming needs only the latest
        report_to=[],
        seed=cfg.seed,
        data_seed=cfg.seed,
        remove_unused_columns=False,  # the collator's "weights" is not a model argument
        dataloader_pin_memory=device == "cuda",
        disable_tqdm=not progress,
        use_cpu=device == "cpu",
    )


def write_loss_csv(log_history: Sequence[dict], path: str | os.PathLike) -> int:
    """Write the periodic training losses of a Trainer's ``state.log_history``.

    Returns:
        The number of rows written.
    """
    rows = [
        {
            "step": entry["step"],
            "epoch": entry.get("epoch", ""),
            "loss": entry["loss"],
            "learning_rate": entry.get("learning_rate", ""),
        }
        for entry in log_history
        if "loss" in entry
    ]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "epoch", "loss", "learning_rate"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def plot_loss(csv_path: str | os.PathLike, png_path: str | os.PathLike, title: str) -> None:
    """Plot training loss against optimiser step from a loss CSV (see :func:`write_loss_csv`).

    Args:
        csv_path: CSV with at least ``step`` and ``loss`` columns.
        png_path: where the figure goes.
        title: the figure's title.
    """
    from matplotlib.figure import Figure

    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    steps = [int(r["step"]) for r in rows]
    losses = [float(r["loss"]) for r in rows]
    # A bare Figure renders with Agg and never touches pyplot's global backend state.
    fig = Figure(figsize=(6, 4), dpi=120)
    ax = fig.add_subplot()
    ax.plot(steps, losses, marker="o" if len(rows) < 30 else None, markersize=3)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("weighted reply-token NLL")
    ax.set_title(title, fontsize=9, wrap=True)  # titles name model and adapter, often long
    ax.grid(alpha=0.3)
    if not rows:
        ax.text(0.5, 0.5, "no loss logged", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(png_path)


def _versions() -> dict:
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


# ---------------------------------------------------------------------------------------------
# Entry point


def build_trainer(
    model,
    tokenizer,
    features: Sequence[dict],
    cfg: TrainConfig,
    ckpt_dir: str | os.PathLike,
    dtype,
    device: str,
    progress: bool = False,
):
    """A weighted-loss Trainer over encoded features, reporting through this module's logger.

    Args:
        model: the PEFT-wrapped model to train.
        tokenizer: its tokenizer (gives the pad id).
        features: what :func:`encode_examples` returns.
        cfg: training settings.
        ckpt_dir: where checkpoints go.
        dtype: the resolved torch dtype (bf16 switches on autocast).
        device: "cpu" or "cuda".
        progress: show tqdm progress bars on stderr.

    Returns:
        A transformers ``Trainer`` whose ``compute_loss`` is the weighted per-example loss and
        which counts the real (non-pad) tokens it trains on in ``real_tokens``.
    """
    from transformers import PrinterCallback, ProgressCallback

    trainer_class, quiet_progress, log_loss, skip_final_save = trainer_classes()
    trainer = trainer_class(
        model=model,
        args=training_arguments(cfg, Path(ckpt_dir), dtype, device, progress),
        train_dataset=features,
        data_collator=WeightedChatCollator(pad_token_id=tokenizer.pad_token_id),
        processing_class=tokenizer,
    )
    # Trainer prints each log dict to stdout; our logger reports them instead.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if progress:
        trainer.add_callback(quiet_progress)
    trainer.add_callback(log_loss)
    trainer.add_callback(skip_final_save)  # runs after DefaultFlowCallback, so it has the last word
    return trainer


def _plot_title(base_model: str, out_dir: Path, init_adapter: str | None) -> str:
    how = f"continued from {Path(init_adapter).name}" if init_adapter else "fresh adapter"
    return f"LoRA on {Path(base_model).name} ({how}) -> {out_dir.parent.name}/{out_dir.name}"


def sort_target_modules(config_path: Path) -> None:
    """Write an adapter config's ``target_modules`` in sorted order.

    PEFT expands ``all-linear`` into a set and saves it as a list in the set's order, which
    follows the process's string hashing: two identical trainings wrote different bytes, and
    the adapter's content hash (whole-job reply reuse) never matched. Sorted, they are equal.
    """
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        write_json(config_path, config)


def _write_outputs(trainer, out_dir: Path, meta: dict, plot_title: str) -> dict:
    """Save the adapter, loss.csv, loss.png and train_config.json; return the summary."""
    import torch

    trainer.model.save_pretrained(str(out_dir))
    sort_target_modules(out_dir / "adapter_config.json")
    share_like_open(out_dir)
    n_rows = write_loss_csv(trainer.state.log_history, out_dir / "loss.csv")
    plot_loss(out_dir / "loss.csv", out_dir / "loss.png", plot_title)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    wall = meta.pop("wall_s")
    summary = {
        "examples": meta["counts"]["examples"],
        "dropped": meta["counts"]["dropped"],
        "truncated": meta["counts"]["truncated"],
        "steps": int(trainer.state.global_step),
        "final_loss": losses[-1] if losses else float("nan"),
        "train_tokens_per_s": trainer.real_tokens / max(wall, 1e-9),
        "wall_s": wall,
    }
    trainable, total = count_params(trainer.model)
    meta |= {
        "torch_threads": torch.get_num_threads(),
        "trainable_params": trainable,
        "total_params": total,
        "loss_rows": n_rows,
        "train_real_tokens": trainer.real_tokens,
        "versions": _versions(),
    }
    write_json(out_dir / "train_config.json", {**meta, **summary})
    return summary


def train_adapter(
    examples_path: str | os.PathLike,
    base_model: str,
    out_dir: str | os.PathLike,
    cfg: TrainConfig,
    *,
    init_adapter: str | None = None,
    revision: str | None = None,
    progress: bool = True,
) -> dict:
    """Fine-tune a LoRA (or QLoRA) adapter on weighted chat examples and save it.

    Writes to ``out_dir``: ``adapter_model.safetensors`` and ``adapter_config.json``;
    ``train_config.json`` (resolved config, base model, dataset sha256, counts, library versions,
    wall time, tokens/s); ``loss.csv`` (step, epoch, loss, learning_rate); ``loss.png``.
    An interrupted run resumes from ``out_dir/checkpoints``, which is removed once the adapter is
    saved. The caller sets torch's thread count.

    Args:
        examples_path: JSONL of examples (see :func:`load_examples`).
        base_model: folder or hub id of the base causal LM.
        out_dir: output folder (created).
        cfg: training settings.
        init_adapter: folder of a LoRA adapter to continue training (Stage III); its own r and
            alpha apply.
        revision: hub revision of ``base_model``.
        progress: show tqdm progress bars on stderr.

    Returns:
        Summary: ``examples``, ``dropped``, ``truncated``, ``steps``, ``final_loss``,
        ``train_tokens_per_s`` (real, non-pad tokens) and ``wall_s`` (of the training loop).

    Raises:
        ValueError: for a bad example row (naming file and line), an unusable chat template, or
            when every example is too long.
        DeviceError: for ``quantization: 4bit`` where bitsandbytes cannot run on this device.
    """

    out_dir = Path(out_dir)
    device = pick_device("auto")
    check_train_quantization(cfg, device)
    # glibc's allocator is left as it is. Fixing its mmap threshold at 1 MB (so freed
    # activations go back to the OS) cut a CPU LoRA job's peak RSS from 3.4 to 2.3 GB, but every
    # activation then came from fresh pages: a step took 5.6 s instead of 3.5 s (SmolLM2-135M,
    # fp32, 4 x 220 tokens, 2-core AMD EPYC).
    examples = load_examples(examples_path)
    examples_sha = file_sha256(examples_path)
    logger.info(
        "training %s on %s (%d examples, sha256 %s) -> %s; config %s",
        base_model,
        examples_path,
        len(examples),
        examples_sha[:12],
        out_dir,
        json.dumps(cfg.as_dict(), sort_keys=True),
    )
    tokenizer = load_tokenizer(base_model, revision)
    features, counts = encode_examples(tokenizer, examples, cfg.max_length)
    logger.info("encoded: %s", json.dumps(counts, sort_keys=True))
    if not features:
        raise ValueError(
            f"{examples_path}: every example was dropped (prompts reach max_length={cfg.max_length})"
        )
    dtype = resolve_train_dtype(cfg.dtype, device)
    model = prepare_model(base_model, cfg, dtype, device, revision, init_adapter)

    ckpt_dir = out_dir / CHECKPOINT_DIR
    fingerprint = _fingerprint(examples_sha, base_model, revision, init_adapter, cfg)
    resume = find_resume_checkpoint(ckpt_dir, fingerprint)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    write_json(ckpt_dir / FINGERPRINT_FILE, fingerprint)
    if resume:
        logger.info("resuming from %s", resume)
    trainer = build_trainer(model, tokenizer, features, cfg, ckpt_dir, dtype, device, progress)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    meta = {
        "config": {**cfg.as_dict(), "dtype_resolved": str(dtype).replace("torch.", "")},
        "base_model": str(base_model),
        "revision": revision,
        "init_adapter": str(init_adapter) if init_adapter else None,
        "examples_path": str(examples_path),
        "examples_sha256": examples_sha,
        "counts": counts,
        "device": device,
        "quantization": quantization_record(cfg.quantization, dtype),
        "resumed_from": resume,
        "wall_s": time.perf_counter() - started,
    }
    summary = _write_outputs(trainer, out_dir, meta, _plot_title(base_model, out_dir, init_adapter))
    # The adapter is safely written: the checkpoints (optimizer state included) are dead weight now.
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    logger.info(
        "trained %d steps in %.1fs (%.0f real tokens/s), final loss %.4f; adapter in %s",
        summary["steps"],
        summary["wall_s"],
        summary["train_tokens_per_s"],
        summary["final_loss"],
        out_dir,
    )
    return summary


def carry_over_adapter(init_adapter: str | os.PathLike, out_dir: str | os.PathLike, examples_path) -> dict:
    """A repair round with nothing to repair keeps its parent's adapter unchanged.

    Iterative repair stops this way once an audit finds no drift: the round's outputs exist
    (so the DAG and the tables stay uniform), and ``train_config.json`` says why no step ran.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copy2(Path(init_adapter) / name, out_dir / name)
    share_like_open(out_dir)  # copy2 copies the parent's mode too
    reason = f"{examples_path} is empty (no drift left to repair): the adapter of {init_adapter} is kept"
    meta = {"skipped": reason, "init_adapter": str(init_adapter), "examples_path": str(examples_path),
            "steps": 0, "versions": _versions()}  # fmt: skip
    write_json(out_dir / "train_config.json", meta)
    (out_dir / "loss.csv").write_text("step,epoch,loss,learning_rate\n", encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.text(0.5, 0.5, "no training: no drift left to repair", ha="center", va="center")
    ax.set_axis_off()
    fig.savefig(out_dir / "loss.png", dpi=120)
    plt.close(fig)
    logger.warning(reason)
    return {"steps": 0, "skipped": reason}
