"""LoRA / QLoRA supervised fine-tuning on chat examples, each with its own loss weight.

Used twice in DART: Stage I trains M0 into M_int on the teacher's rationales, and Stage III
continues M_int's adapter on repair rationales weighted by drift severity.

The loss is the mean over examples of ``weight_i * (mean token NLL of example i's reply)``:
every example counts the same whatever its length, and a weight of 2 counts it exactly twice.

What keeps it fast on a small CPU and lean on a GPU:

- batches are padded dynamically (to the longest in the batch, a multiple of 8), and
  examples of similar length are grouped into the same batches;
- padding goes on the left, so every reply ends at the right edge: the vocabulary projection
  and the loss are computed only over the last columns that hold reply tokens, not over the
  prompts (with a 128k-token vocabulary those logits are most of a step's memory);
- bf16 is used where the processor runs it faster than fp32 (measured, as for generation).
"""

from __future__ import annotations

import csv
import functools
import inspect
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harmdrift.data import file_sha256
from harmdrift.io import iter_jsonl, write_json

logger = logging.getLogger(__name__)

TRAIN_DTYPES = ("auto", "bfloat16", "float32")
TRAIN_QUANTIZATIONS = ("none", "4bit")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
IGNORE_INDEX = -100  # the label value cross-entropy skips: prompt and padding tokens
PAD_MULTIPLE = 8  # tensor-core friendly shapes on GPUs; costs at most 7 pad columns
CHECKPOINT_DIR = "checkpoints"
FINGERPRINT_FILE = "harmdrift_fingerprint.json"


def _is_number(value: object) -> bool:
    # bool is an int subclass, but `true` in a config is a typo, not a number.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainConfig:
    """The ``training`` section of the config: LoRA shape, optimiser, batching, precision."""

    lora_r: int = 16
    lora_alpha: float = 32
    lora_dropout: float = 0.05  # on CPU, drawing the dropout masks takes about a fifth of a step
    target_modules: str | tuple[str, ...] = "all-linear"
    learning_rate: float = 2e-4
    epochs: float = 3.0
    batch_size: int = 8
    grad_accum: int = 2
    warmup_ratio: float = 0.03
    scheduler: str = "cosine"
    max_length: int = 1024
    group_by_length: bool = True
    gradient_checkpointing: bool = False
    dtype: str = "auto"
    quantization: str = "none"
    seed: int = 0
    logging_steps: int = 5
    max_steps: int = -1  # > 0 caps the optimiser steps (tests, smoke runs); -1 trains all epochs
    save_steps: int = 200  # checkpoint interval, so a killed job resumes instead of starting over

    def __post_init__(self) -> None:
        self._check_ints()
        self._check_floats()
        self._check_choices()
        self._check_target_modules()

    def _check_ints(self) -> None:
        minimum = {
            "lora_r": 1,
            "batch_size": 1,
            "grad_accum": 1,
            "max_length": 2,
            "logging_steps": 1,
            "save_steps": 1,
            "seed": 0,
        }
        for name, low in minimum.items():
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ValueError(f"training.{name} must be an integer >= {low}, got {value!r}")
        if not _is_int(self.max_steps) or (self.max_steps < 1 and self.max_steps != -1):
            raise ValueError(
                f"training.max_steps must be -1 (no cap) or an integer >= 1, got {self.max_steps!r}"
            )

    def _check_floats(self) -> None:
        for name in ("lora_alpha", "learning_rate", "epochs"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"training.{name} must be a number > 0, got {value!r}")
        for name in ("lora_dropout", "warmup_ratio"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value < 1:
                raise ValueError(f"training.{name} must be a number in [0, 1), got {value!r}")

    def _check_choices(self) -> None:
        for name, choices in (
            ("scheduler", SCHEDULERS),
            ("dtype", TRAIN_DTYPES),
            ("quantization", TRAIN_QUANTIZATIONS),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"training.{name} must be one of {choices}, got {getattr(self, name)!r}")
        for name in ("group_by_length", "gradient_checkpointing"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"training.{name} must be true or false, got {getattr(self, name)!r}")

    def _check_target_modules(self) -> None:
        modules = self.target_modules
        if isinstance(modules, str):
            if not modules:
                raise ValueError("training.target_modules must not be empty")
            return
        if (
            not isinstance(modules, list | tuple)
            or not modules
            or not all(isinstance(m, str) and m for m in modules)
        ):
            raise ValueError(
                "training.target_modules must be 'all-linear' or a non-empty list of module names, "
                f"got {modules!r}"
            )
        # A tuple keeps the frozen config hashable and comparable whatever YAML gave us.
        object.__setattr__(self, "target_modules", tuple(modules))

    def as_dict(self) -> dict:
        out = asdict(self)
        if isinstance(self.target_modules, tuple):
            out["target_modules"] = list(self.target_modules)
        return out


# ---------------------------------------------------------------------------------------------
# Examples and tokenisation


def _row_problem(row: dict) -> str | None:
    """Why a JSONL row is not a usable training example, or None when it is."""
    messages = row.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        return "messages: expected a list of at least two chat messages (a prompt and the reply)"
    for i, message in enumerate(messages):
        if (
            not isinstance(message, dict)
            or not isinstance(message.get("role"), str)
            or not isinstance(message.get("content"), str)
        ):
            return f"messages[{i}]: expected an object with string 'role' and 'content'"
    if messages[-1]["role"] != "assistant":
        return f"messages: the last message must be the assistant's reply, got role {messages[-1]['role']!r}"
    weight = row.get("weight", 1.0)
    if not _is_number(weight) or not math.isfinite(weight) or weight <= 0:
        return f"weight: expected a number > 0, got {weight!r}"
    return None


def load_examples(path: str | os.PathLike) -> list[dict]:
    """Read and check training examples.

    Args:
        path: JSONL with rows ``{"id", "messages": [..., {"role": "assistant", ...}], "weight"}``;
            ``weight`` defaults to 1.0.

    Returns:
        ``{"id", "messages", "weight"}`` dicts in file order (ids may repeat: oversampled copies).

    Raises:
        ValueError: naming the file and line for a row that is not valid JSON, lacks messages, does
            not end with the assistant's reply, or has a weight that is not a number > 0; or when
            the file holds no examples.
    """
    examples = []
    for lineno, row in iter_jsonl(path):
        problem = _row_problem(row)
        if problem:
            raise ValueError(f"{path}:{lineno}: {problem}")
        examples.append(
            {
                "id": str(row.get("id", f"line{lineno}")),
                "messages": row["messages"],
                "weight": float(row.get("weight", 1.0)),
            }
        )
    if not examples:
        raise ValueError(
            f"{path}: no training examples (for a rationale file, its .dropped.jsonl and "
            ".summary.json say why every item was dropped)"
        )
    return examples


def encode_example(tokenizer, messages: Sequence[dict], max_length: int) -> dict | None:
    """Token ids and labels of one conversation, with only the final reply left unmasked.

    The prompt is rendered exactly as the generation back-end renders it (template applied with
    the generation prompt, no extra special tokens), so training sees the same token sequence that
    the model later continues. The reply is the rest of the full rendering; when the template puts
    no end-of-sequence token in it, one is appended so the model learns to stop.

    Args:
        tokenizer: a tokenizer with a chat template.
        messages: the conversation; the last message is the assistant's reply.
        max_length: longest sequence kept; longer ones lose their end.

    Returns:
        ``{"input_ids", "labels", "truncated"}``, or None when not a single reply token fits.

    Raises:
        ValueError: when the rendered conversation does not start with the rendered prompt (a chat
            template that rewrites earlier turns), or the reply renders to no tokens.
    """
    full = tokenizer.apply_chat_template(list(messages), tokenize=False)
    prompt = tokenizer.apply_chat_template(list(messages[:-1]), tokenize=False, add_generation_prompt=True)
    if not full.startswith(prompt):
        raise ValueError(
            "the chat template renders the conversation so that it does not start with its own prompt "
            f"(prompt ends {prompt[-60:]!r}, "
            f"conversation there reads {full[len(prompt) - 60 : len(prompt)]!r}); "
            "the reply tokens cannot be told apart from the prompt"
        )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    if eos is not None and eos not in reply_ids:
        reply_ids = reply_ids + [eos]
    if not reply_ids:
        raise ValueError("the assistant's reply renders to no tokens")
    if len(prompt_ids) >= max_length:
        return None
    input_ids = (prompt_ids + reply_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + reply_ids)[:max_length]
    return {
        "input_ids": input_ids,
        "labels": labels,
        "truncated": len(prompt_ids) + len(reply_ids) > max_length,
    }


def encode_examples(tokenizer, examples: Sequence[dict], max_length: int) -> tuple[list[dict], dict]:
    """Encode every example (see :func:`encode_example`), dropping those whose reply cannot fit.

    Returns:
        The features ``{"input_ids", "labels", "weight"}`` and counts ``{"examples", "dropped",
        "truncated", "tokens", "reply_tokens"}``.
    """
    features, dropped, truncated = [], 0, 0
    for example in examples:
        try:
            encoded = encode_example(tokenizer, example["messages"], max_length)
        except ValueError as err:
            raise ValueError(f"example {example['id']!r}: {err}") from None
        if encoded is None:
            dropped += 1
            continue
        truncated += encoded.pop("truncated")
        features.append({**encoded, "weight": example["weight"]})
    if dropped:
        logger.warning("dropped %d examples whose prompt alone reaches max_length=%d", dropped, max_length)
    if truncated:
        logger.warning("cut the end off %d replies to fit max_length=%d", truncated, max_length)
    counts = {
        "examples": len(features),
        "dropped": dropped,
        "truncated": truncated,
        "tokens": sum(len(f["input_ids"]) for f in features),
        "reply_tokens": sum(sum(x != IGNORE_INDEX for x in f["labels"]) for f in features),
    }
    return features, counts


@dataclass
class WeightedChatCollator:
    """Pad a batch on the left to its longest sequence (rounded up) and carry the loss weights.

    Left padding lines up every reply's last token in the final column, so the loss only needs
    the logits of the last few columns. Position ids are counted from each sequence's first real
    token, so a padded sequence gets exactly the positions it would have alone.
    """

    pad_token_id: int
    pad_multiple: int = PAD_MULTIPLE

    def __call__(self, features: Sequence[dict]) -> dict:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        width = -(-longest // self.pad_multiple) * self.pad_multiple
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            input_ids[row, width - n :] = torch.tensor(feature["input_ids"])
            labels[row, width - n :] = torch.tensor(feature["labels"])
            attention_mask[row, width - n :] = 1
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        weights = torch.tensor([float(f["weight"]) for f in features], dtype=torch.float32)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "labels": labels,
            "weights": weights,
        }


# ---------------------------------------------------------------------------------------------
# Loss


def per_example_nll(logits, labels):
    """Mean next-token NLL of each row over its unmasked labels.

    Args:
        logits: ``(batch, k, vocab)``, the logits of the *last* k positions of the sequences.
        labels: ``(batch, length)`` with :data:`IGNORE_INDEX` on positions not to learn.

    Returns:
        A float32 tensor ``(batch,)``; a row with no unmasked label gets 0.
    """
    import torch.nn.functional as F

    k = logits.shape[1]
    # Logit column j predicts the token one step to its right; the last column predicts nothing.
    targets = labels[:, labels.shape[1] - k + 1 :]
    scores = logits[:, :-1].float()
    nll = F.cross_entropy(
        scores.reshape(-1, scores.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
    ).view(targets.shape)
    counts = targets.ne(IGNORE_INDEX).sum(-1)
    return nll.sum(-1) / counts.clamp(min=1)


def weighted_loss(per_example, weights):
    """Mean over examples of ``weight * per-example loss`` (so weight 2 counts an example twice)."""
    return (per_example * weights.to(per_example.device, per_example.dtype)).mean()


def logit_columns(labels) -> int:
    """How many final columns of logits cover every label (left padding puts replies last)."""
    has_label = labels.ne(IGNORE_INDEX).any(0)
    first = int(has_label.nonzero()[0]) if bool(has_label.any()) else labels.shape[1] - 1
    # One column before the first label: its logits predict that label.
    return labels.shape[1] - max(first - 1, 0)


@functools.cache
def _accepts_logits_to_keep(model_class: type) -> bool:
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


def batch_losses(model, batch: dict):
    """Forward a collated batch and return each example's mean reply-token NLL.

    Only the logits of the last columns that hold reply tokens are computed, when the model
    supports ``logits_to_keep``; otherwise all of them.

    Args:
        model: a causal LM (plain or PEFT-wrapped).
        batch: what :class:`WeightedChatCollator` returns (tensors on the model's device).

    Returns:
        A float32 tensor ``(batch,)``.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    kwargs = {}
    keep = logit_columns(batch["labels"])
    if _accepts_logits_to_keep(type(base)):
        kwargs["logits_to_keep"] = keep
    outputs = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        use_cache=False,
        **kwargs,
    )
    logits = outputs.logits[:, -keep:]
    return per_example_nll(logits, batch["labels"])


@functools.cache
def _trainer_classes() -> tuple[type, type, type, type]:
    """Trainer subclass and callbacks, built on first use so importing this module stays light."""
    from transformers import ProgressCallback, Trainer, TrainerCallback

    class WeightedLossTrainer(Trainer):
        """A Trainer whose loss is the weighted mean of per-example reply NLLs."""

        # compute_loss returns a per-micro-batch mean; Trainer divides it by grad_accum.
        loss_is_scaled_for_ga = False

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            # Stops Trainer counting label tokens for a token-normalised loss we do not use.
            self.model_accepts_loss_kwargs = False
            self.real_tokens = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                self.real_tokens += int(inputs["attention_mask"].sum())
            losses = batch_losses(model, inputs)
            loss = weighted_loss(losses, inputs["weights"])
            return (loss, {"per_example": losses}) if return_outputs else loss

    class QuietProgressCallback(ProgressCallback):
        """Progress bars on stderr, without writing each log dict to stdout."""

        def on_log(self, args, state, control, logs=None, **kwargs) -> None:
            return None

    class LogLossCallback(TrainerCallback):
        """Send the trainer's periodic loss reports to this module's logger."""

        def on_log(self, args, state, control, logs=None, **kwargs) -> None:
            if logs and "loss" in logs:
                logger.info(
                    "step %d/%d epoch %.2f loss %.4f lr %.3g",
                    state.global_step,
                    state.max_steps,
                    logs.get("epoch", float("nan")),
                    logs["loss"],
                    logs.get("learning_rate", float("nan")),
                )

    class SkipFinalCheckpointCallback(TrainerCallback):
        """No checkpoint after the last step: the adapter is saved right after, and then it is deleted."""

        def on_step_end(self, args, state, control, **kwargs) -> None:
            if state.global_step >= state.max_steps:
                control.should_save = False

    return WeightedLossTrainer, QuietProgressCallback, LogLossCallback, SkipFinalCheckpointCallback


# ---------------------------------------------------------------------------------------------
# Model


def resolve_train_dtype(dtype: str, device: str):
    """Resolve ``dtype``: auto picks bf16 on GPUs that support it and on CPUs where it is faster.

    fp16 is never picked: training in it needs loss scaling and still overflows on some models.
    """
    from harmdrift.generation import pick_dtype

    return pick_dtype(dtype, device, allow_fp16=False)


def _check_quantization(cfg: TrainConfig, device: str) -> None:
    if cfg.quantization == "4bit" and device != "cuda":
        raise RuntimeError(
            "quantization: 4bit needs a CUDA GPU (bitsandbytes NF4 kernels); torch sees none on this "
            "machine. Set training.quantization to none to train a plain LoRA adapter on CPU."
        )


def load_base_model(base_model: str, cfg: TrainConfig, dtype, device: str, revision: str | None = None):
    """Load the frozen base model, 4-bit quantised for QLoRA when configured."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"revision": revision, "dtype": dtype}
    if cfg.quantization == "4bit":
        import torch

        from harmdrift.models import nf4_quantization

        kwargs["quantization_config"] = nf4_quantization(torch.bfloat16)
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(base_model, **kwargs)
    model.config.use_cache = False  # a KV cache is useless in training and costs memory
    if cfg.quantization == "4bit":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    return model


def attach_adapter(model, cfg: TrainConfig, init_adapter: str | None = None):
    """Wrap the base model with a trainable LoRA adapter: a fresh one, or ``init_adapter``'s."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if init_adapter:
        model = PeftModel.from_pretrained(model, init_adapter, is_trainable=True)
        loaded = model.peft_config["default"]
        if (loaded.r, loaded.lora_alpha) != (cfg.lora_r, cfg.lora_alpha):
            logger.warning(
                "continuing adapter %s with its own r=%s alpha=%s (training.lora_r/lora_alpha are not used)",
                init_adapter,
                loaded.r,
                loaded.lora_alpha,
            )
        return model
    targets = cfg.target_modules if isinstance(cfg.target_modules, str) else list(cfg.target_modules)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def _contiguous_input(module, args):
    return (args[0].contiguous(), *args[1:])


def tune_for_speed(model, cfg: TrainConfig, dtype) -> None:
    """Two tweaks that leave the maths alone and take about a quarter off a CPU training step.

    - Under bf16 autocast, PEFT's cast of each LoRA layer's input to the adapter's fp32 dtype
      only makes autocast cast it straight back: two full copies per layer, for nothing. (So a
      bf16 model tuned here must run under autocast, as the Trainer does when bf16 is on.)
    - ``logits_to_keep`` hands the output layer a strided slice of the hidden states; torch's
      linear then expands the whole vocabulary matrix once per sequence (a batched matmul)
      instead of one plain matmul. A contiguous copy of the slice is tiny by comparison.
    """
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer

    if dtype == torch.bfloat16 and cfg.quantization == "none":
        for module in model.modules():
            if isinstance(module, BaseTunerLayer):
                module.cast_input_dtype_enabled = False
    head = model.get_output_embeddings()
    if head is not None:
        head.register_forward_pre_hook(_contiguous_input)


def _count_params(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


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

    trainer_class, quiet_progress, log_loss, skip_final_save = _trainer_classes()
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


def _load_tokenizer(base_model: str, revision: str | None):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model, revision=revision)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise ValueError(f"{base_model}: the tokenizer has no chat template; chat fine-tuning needs one")
    return tokenizer


def _prepare_model(base_model: str, cfg: TrainConfig, dtype, device: str, revision, init_adapter):
    """Base model plus a trainable adapter, tuned for speed, with its parameter counts logged."""
    from transformers import set_seed

    set_seed(cfg.seed)  # the fresh LoRA matrices are drawn from this seed
    model = attach_adapter(load_base_model(base_model, cfg, dtype, device, revision), cfg, init_adapter)
    tune_for_speed(model, cfg, dtype)
    trainable, total = _count_params(model)
    logger.info(
        "model on %s as %s: %d trainable of %d parameters",
        device,
        str(dtype).replace("torch.", ""),
        trainable,
        total,
    )
    return model


def _write_outputs(trainer, out_dir: Path, meta: dict, plot_title: str) -> dict:
    """Save the adapter, loss.csv, loss.png and train_config.json; return the summary."""
    import torch

    trainer.model.save_pretrained(str(out_dir))
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
    trainable, total = _count_params(trainer.model)
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
        RuntimeError: for ``quantization: 4bit`` without a CUDA GPU.
    """
    from harmdrift.generation import pick_device

    out_dir = Path(out_dir)
    device = pick_device("auto")
    _check_quantization(cfg, device)
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
    tokenizer = _load_tokenizer(base_model, revision)
    features, counts = encode_examples(tokenizer, examples, cfg.max_length)
    logger.info("encoded: %s", json.dumps(counts, sort_keys=True))
    if not features:
        raise ValueError(
            f"{examples_path}: every example was dropped (prompts reach max_length={cfg.max_length})"
        )
    dtype = resolve_train_dtype(cfg.dtype, device)
    model = _prepare_model(base_model, cfg, dtype, device, revision, init_adapter)

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


def run_training(
    *,
    examples_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    training: dict,
    student: dict,
    load_path: str,
    init_adapter: str | None = None,
    threads: int | None = None,
) -> dict:
    """The train_adapter rule's body: build the config from its sections and train.

    Args:
        training: the ``training`` config section.
        student: the ``student`` section (its dtype and quantization apply to training too,
            so QLoRA is simply ``student.quantization: 4bit``).
        load_path: what ``from_pretrained`` loads for the student.
        init_adapter: an adapter to continue from (Stage III).
        threads: CPU threads torch may use.
    """
    from harmdrift.generation import set_threads

    set_threads(threads)
    if init_adapter and not any(True for _ in iter_jsonl(examples_path)):
        return carry_over_adapter(init_adapter, out_dir, examples_path)
    fields = {k: v for k, v in training.items() if k != "target_modules"}
    target = training.get("target_modules", "all-linear")
    cfg = TrainConfig(
        **fields,
        target_modules=target if isinstance(target, str) else tuple(target),
        dtype=student.get("dtype", "auto"),
        quantization=student.get("quantization", "none"),
    )
    summary = train_adapter(
        examples_path,
        load_path,
        out_dir,
        cfg,
        init_adapter=init_adapter,
        revision=student.get("revision"),
    )
    logger.info("training summary: %s", summary)
    return summary
