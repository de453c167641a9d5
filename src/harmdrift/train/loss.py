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
