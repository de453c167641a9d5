"""Forced choice after a reply: how likely each option is once a fixed prefix follows the reply.

The binary task's free-text answer depends on whether the model writes DART's conclusion line.
The forced choice does not: it appends "\\nConclusion:" to the prompt plus the reply and
compares the log-likelihoods of " YES" and " NO". The engine scores a finished row from its own
KV cache, so the prompt and the reply are never run again: one short forward pass over the
last sampled token, the prefix and (for multi-token options) all but the last option token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harmdrift.lm.kv import is_plain


@dataclass(frozen=True)
class ForcedChoice:
    """The text appended after each reply and the options compared at its end.

    An option's tokens are those that follow the prefix's tokens in ``prefix + separator +
    option``, so the split is the one the model sees in "Conclusion: YES".
    """

    options: tuple[str, ...] = ("YES", "NO")
    prefix: str = "\nConclusion:"
    separator: str = " "

    def __post_init__(self) -> None:
        if len(self.options) < 2 or len(set(self.options)) != len(self.options):
            raise ValueError(f"forced choice needs at least two distinct options, got {self.options}")
        if not self.prefix:
            raise ValueError("forced choice needs a non-empty prefix")


def option_token_ids(tokenizer, choice: ForcedChoice) -> tuple[list[int], list[list[int]]]:
    """Token ids of the prefix and of each option as it continues the prefix."""
    prefix = tokenizer(choice.prefix, add_special_tokens=False)["input_ids"]
    options = []
    for option in choice.options:
        joint = tokenizer(choice.prefix + choice.separator + option, add_special_tokens=False)["input_ids"]
        if joint[: len(prefix)] == prefix and len(joint) > len(prefix):
            options.append(joint[len(prefix) :])
        else:  # a merge across the boundary: fall back to the option on its own
            options.append(tokenizer(choice.separator + option, add_special_tokens=False)["input_ids"])
    if any(not ids for ids in options):
        raise ValueError(f"an option of {choice.options} has no tokens")
    return prefix, options


def select_rows(cache, index, config):
    """A new cache holding the rows ``index`` of ``cache`` (which is left untouched)."""
    import copy

    from transformers import DynamicCache

    if is_plain(cache):
        layers = [(k.index_select(0, index), v.index_select(0, index)) for k, v, _ in cache]
        return DynamicCache(ddp_cache_data=layers, config=config)
    picked = copy.deepcopy(cache)  # other layer kinds keep state beyond keys and values
    picked.batch_select_indices(index)
    return picked


class ForcedScorer:
    """Scores finished rows of a live batch from their KV cache.

    Each row is fed its pending tokens (the last sampled one, unless it was EOS), the prefix,
    and, once per multi-token option, that option's tokens but the last. Single-token options
    are read off the position after the prefix, so with single-token options a row is one
    sequence; each multi-token option adds one. Sequences of different lengths are left-padded
    with masked positions, so one forward pass serves every finished row.
    """

    def __init__(self, choice: ForcedChoice, tokenizer) -> None:
        self.choice = choice
        self.labels = choice.options
        self.pad_id = tokenizer.pad_token_id
        self.prefix_ids, self.option_ids = option_token_ids(tokenizer, choice)
        if not self.prefix_ids:
            raise ValueError(f"the forced-choice prefix {choice.prefix!r} has no tokens")
        multi = [ids for ids in self.option_ids if len(ids) > 1]
        self.tails = [ids[:-1] for ids in multi] or [[]]

    def score(
        self, model, cache, index, mask, last_position, pending: Sequence[list[int]]
    ) -> list[list[float]]:
        """Log-probability of each option for the rows ``index`` of a live batch.

        Args:
            model: the causal LM.
            cache: the live batch's KV cache (not modified).
            index: a long tensor of the rows to score.
            mask: the live batch's attention mask; 0 marks positions a row does not see.
            last_position: per row of the batch, the position of its last cached token.
            pending: per scored row, its tokens not yet in the cache.

        Returns:
            Per scored row, the summed log-probability of each option's tokens.
        """
        import torch

        n_tails = len(self.tails)
        device = mask.device
        rows = index.repeat_interleave(n_tails)
        suffixes = [feed + self.prefix_ids + tail for feed in pending for tail in self.tails]
        width = max(len(s) for s in suffixes)
        ids = torch.full((len(suffixes), width), self.pad_id, dtype=torch.long, device=device)
        grow = torch.zeros((len(suffixes), width), dtype=mask.dtype, device=device)
        for i, suffix in enumerate(suffixes):
            ids[i, width - len(suffix) :] = torch.tensor(suffix, dtype=torch.long, device=device)
            grow[i, width - len(suffix) :] = 1
        positions = last_position.index_select(0, rows)[:, None] + grow.cumsum(-1)
        keep = max(len(t) for t in self.tails) + 1
        logits = model(
            input_ids=ids,
            attention_mask=torch.cat([mask.index_select(0, rows), grow], dim=1),
            position_ids=positions,
            past_key_values=select_rows(cache, rows, model.config),
            use_cache=True,
            logits_to_keep=keep,
        ).logits.float()
        logprobs = logits.log_softmax(dim=-1).cpu()
        scores = []
        for r in range(len(pending)):
            scores.append([self._read(logprobs, r * n_tails, option) for option in self.option_ids])
        return scores

    def _read(self, logprobs, first_sequence: int, option: list[int]) -> float:
        """Sum an option's log-probabilities from the sequence that carries its tokens."""
        if len(option) == 1:
            # Every sequence of the row has the prefix's end at the same offset from its tail.
            sequence, tail = first_sequence, self.tails[0]
        else:
            offset = self.tails.index(option[:-1])
            sequence, tail = first_sequence + offset, self.tails[offset]
        # Logits cover the last `keep` positions; the prefix's last token sits len(tail) from the end.
        start = logprobs.shape[1] - 1 - len(tail)
        return float(sum(logprobs[sequence, start + j, token] for j, token in enumerate(option)))


def forced_prediction(scores: dict[str, float] | None) -> str | None:
    """The option with the highest log-probability; "ABSTAIN" on an exact tie, None without scores."""
    if not scores:
        return None
    best = max(scores.values())
    winners = [option for option, value in scores.items() if value == best]
    return winners[0] if len(winners) == 1 else "ABSTAIN"
