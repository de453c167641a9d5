"""The per-example weighted loss, computed only over the label positions."""

from __future__ import annotations

import functools
import inspect
import logging

from harmdrift.train.examples import IGNORE_INDEX

logger = logging.getLogger(__name__)

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


# Config keys of model families whose forward changes the logits after the output layer
# (Gemma 2/3 soft-capping, Cohere and Granite scaling): the head alone would give other logits.
POST_HEAD_CONFIG_KEYS = ("final_logit_softcapping", "logit_scale", "logits_scaling")

# Logits computed at once: 2**24 fp32 values are 64 MB (341 positions of a 49k vocabulary).
LOGIT_CHUNK_ELEMENTS = 1 << 24


def _decoder_and_head(base):
    """The decoder stack and output layer of a causal LM whose logits are ``head(hidden)``, or None."""
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if head is None or not hasattr(base, "get_decoder") or getattr(head, "weight", None) is None:
        return None
    if any(getattr(base.config, key, None) for key in POST_HEAD_CONFIG_KEYS):
        return None
    decoder = base.get_decoder()
    return None if decoder is base else (decoder, head)


def _chunk_nll(head, hidden, targets):
    import torch.nn.functional as F

    return F.cross_entropy(head(hidden).float(), targets, reduction="none")


def label_nll(head, hidden, labels, chunk_tokens: int | None = None):
    """Mean next-token NLL of each row, with logits only where a label is predicted.

    The hidden states of the positions just before each label are gathered (every row's own,
    so neither prompt nor padding columns reach the output layer) and sent through ``head`` a
    chunk at a time. When gradients are on and there is more than one chunk, each chunk is
    checkpointed: backward recomputes its logits instead of keeping them, so no more than one
    chunk of ``(positions, vocab)`` logits exists at any moment, forward or backward.

    Args:
        head: the output layer (hidden -> vocabulary logits).
        hidden: ``(batch, length, hidden)``, the final hidden states.
        labels: ``(batch, length)`` with :data:`IGNORE_INDEX` on positions not to learn.
        chunk_tokens: positions per chunk; by default as many as fit :data:`LOGIT_CHUNK_ELEMENTS`.

    Returns:
        A float32 tensor ``(batch,)``; a row with no unmasked label gets 0. Equal to
        :func:`per_example_nll` on the full logits, up to float rounding.
    """
    import torch
    from torch.utils.checkpoint import checkpoint

    # The logits at column j predict the token at column j + 1.
    targets = labels[:, 1:]
    rows, cols = targets.ne(IGNORE_INDEX).nonzero(as_tuple=True)
    selected = hidden[rows, cols]  # a contiguous (positions, hidden) copy
    wanted = targets[rows, cols]
    chunk = chunk_tokens or max(1, LOGIT_CHUNK_ELEMENTS // head.weight.shape[0])
    recompute = torch.is_grad_enabled() and len(wanted) > chunk
    pieces = []
    for start in range(0, len(wanted), chunk):
        args = (head, selected[start : start + chunk], wanted[start : start + chunk])
        pieces.append(checkpoint(_chunk_nll, *args, use_reentrant=False) if recompute else _chunk_nll(*args))
    # With no label at all, a sum over the empty selection keeps the result on the graph.
    nll = torch.cat(pieces) if pieces else selected.float().sum(-1)
    total = torch.zeros(labels.shape[0], dtype=torch.float32, device=nll.device).index_add(0, rows, nll)
    counts = torch.bincount(rows, minlength=labels.shape[0])
    return total / counts.clamp(min=1)


def batch_losses(model, batch: dict, chunk_tokens: int | None = None):
    """Forward a collated batch and return each example's mean reply-token NLL.

    The output layer sees only the positions that predict a reply token, a chunk at a time (see
    :func:`label_nll`): neither prompt nor padding columns get vocabulary-wide logits. Models
    whose logits are more than ``head(hidden)`` fall back to the full forward, with
    ``logits_to_keep`` where the model supports it. The label path calls the decoder and the
    output layer, not ``model.forward``: wrappers of that forward (accelerate's autocast, DDP)
    do not apply, so a caller under mixed precision opens the autocast itself.

    Args:
        model: a causal LM (plain or PEFT-wrapped).
        batch: what :class:`WeightedChatCollator` returns (tensors on the model's device).
        chunk_tokens: positions per chunk of logits (see :func:`label_nll`).

    Returns:
        A float32 tensor ``(batch,)``.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inputs = {
        "input_ids": batch["input_ids"],
        "attention_mask": batch["attention_mask"],
        "position_ids": batch["position_ids"],
        "use_cache": False,
    }
    parts = _decoder_and_head(base)
    if parts is not None:
        decoder, head = parts
        hidden = decoder(**inputs).last_hidden_state
        return label_nll(head, hidden, batch["labels"], chunk_tokens)
    keep = logit_columns(batch["labels"])
    if _accepts_logits_to_keep(type(base)):
        inputs["logits_to_keep"] = keep
    logits = model(**inputs).logits[:, -keep:]
    return per_example_nll(logits, batch["labels"])


@functools.cache
def trainer_classes() -> tuple[type, type, type, type]:
    """The weighted-loss Trainer subclass and the three callbacks train.run adds (quiet progress,
    loss logging, no final checkpoint), built on first use so importing this module stays light."""
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
            # batch_losses runs the decoder and the output layer itself, not the model's forward,
            # which is where accelerate applies mixed precision: so it applies it here.
            with self.accelerator.autocast():
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
