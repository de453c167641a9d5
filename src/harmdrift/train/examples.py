"""Training examples: reading them, tokenising chat conversations, and the weighted collator."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

from harmdrift.core.io import iter_jsonl

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # the label value cross-entropy skips: prompt and padding tokens
PAD_MULTIPLE = 8  # tensor-core friendly shapes on GPUs; costs at most 7 pad columns


# ---------------------------------------------------------------------------------------------
# Examples and tokenisation


def _is_number(value: object) -> bool:
    # bool is an int subclass, but `true` as a weight is a typo, not a number.
    return isinstance(value, int | float) and not isinstance(value, bool)


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
