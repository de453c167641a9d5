"""The live batch of the continuous-batching engine: rows, their KV cache, and merging new rows in."""

from __future__ import annotations

from dataclasses import dataclass

from harmdrift.core.decoding import GenParams
from harmdrift.lm.forced import ForcedScorer
from harmdrift.lm.kv import plain_layers, roomy_cache
from harmdrift.lm.sampler import TokenSampler

# New rows are prefilled this many at a time, then stacked into the live batch. On the 2-core
# AMD EPYC (SmolLM2-135M, fp32, 32 prompts of about 200 tokens), one 32-row pass ran at
# 71-79 GFLOP/s on one thread and 102 on two; 8-row passes at 92 and 151: a smaller pass's
# activations stay in cache. Decoding keeps the whole batch, where rows share weight reads.
PREFILL_ROWS = 8


@dataclass
class Row:
    """One reply being written: where it goes, its prompt, its random stream and its tokens."""

    index: int
    prompt: list[int]
    stream: object
    written: list[int]
    reason: str | None = None  # set once finished: "stop", "eos" or "length"
    forced: dict[str, float] | None = None  # forced-choice log-probability per option, if asked


class LiveBatch:
    """The rows currently decoding together, with their shared KV cache.

    Rows finish at very different lengths. transformers' generate() keeps finished rows in
    the batch until the longest reply ends, and on a CPU most of that work is wasted. Here
    finished rows are dropped and their slots refilled with waiting prompts (continuous
    batching), so the batch stays full. Each compaction copies the cache once, so it is done
    when a quarter of the slots are free rather than after every finished row.

    A finished row stays in the batch until then, but sees nothing more: its new positions
    are masked out and its position counter stops, so its cache is exactly prompt + reply
    (the last sampled token aside) when the forced choice reads it.
    """

    def __init__(
        self, owner, params: GenParams, stop, forced: ForcedScorer | None = None, prefix=(0, None)
    ) -> None:
        # owner: the HFGenerator running this batch (its model, tokenizer and sampler).
        # prefix: (length, (keys, values) per layer) of the leading tokens every prompt shares,
        # run once by the owner; each prefill copies it and runs only the rows' own tokens.
        self.model = owner.model
        self.tokenizer = owner.tokenizer
        self.eos_ids = owner.eos_ids()
        self.sampler = TokenSampler(params)
        self.params = params
        self.stop = stop
        self.forced = forced
        self.prefix = prefix
        # Plain caches are prefilled in chunks and stacked; other kinds (sliding windows) are
        # kept as the model made them, one prefill per batch, since they are never refilled.
        self.chunk = PREFILL_ROWS if owner.refills else None
        self.rows: list[Row] = []
        self.cache = None
        self.mask = None
        self.last_position = None
        self.next_ids = None

    @property
    def finished(self) -> int:
        return sum(row.reason is not None for row in self.rows)

    def _accept(self, rows: list[Row], chosen: list[int]) -> None:
        """Record each unfinished row's new token and decide whether the row is done."""
        for row, token in zip(rows, chosen, strict=True):
            if row.reason is not None:
                continue
            if token in self.eos_ids:
                row.reason = "eos"
                continue
            row.written.append(token)
            text = self.tokenizer.decode(row.written, skip_special_tokens=True) if self.stop else ""
            if self.stop is not None and self.stop(text):
                row.reason = "stop"
            elif len(row.written) >= self.params.max_new_tokens:
                row.reason = "length"

    def _sample(self, logits, rows: list[Row]) -> list[int]:
        import torch

        live = [i for i, row in enumerate(rows) if row.reason is None]
        chosen = torch.full((len(rows),), self.tokenizer.pad_token_id, dtype=torch.long)
        if live:
            index = torch.tensor(live, device=logits.device)
            picked = self.sampler.pick(logits.index_select(0, index), [rows[i].stream for i in live])
            chosen[live] = picked.cpu()
        return chosen.tolist()

    def step(self) -> None:
        """Feed every row its last token and sample the next one (finished rows: masked out)."""
        import torch

        live = torch.tensor([row.reason is None for row in self.rows], device=self.mask.device)
        self.mask = torch.cat([self.mask, live[:, None].to(self.mask.dtype)], dim=1)
        self.last_position = self.last_position + live.to(self.last_position.dtype)
        logits = self.model(
            input_ids=self.next_ids[:, None],
            attention_mask=self.mask,
            position_ids=self.last_position[:, None],
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1, :]
        chosen = self._sample(logits, self.rows)
        self._accept(self.rows, chosen)
        self.next_ids = torch.tensor(chosen, device=self.mask.device)

    def drop_finished(self) -> list[Row]:
        """Remove finished rows from the batch (one cache copy) and return them."""
        import torch

        done = [row for row in self.rows if row.reason is not None]
        if not done:
            return []
        if self.forced is not None:
            self._score_forced(done)
        keep = [i for i, row in enumerate(self.rows) if row.reason is None]
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self.cache = self.mask = self.last_position = self.next_ids = None
            return done
        index = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask = self.mask.index_select(0, index)
        self.last_position = self.last_position.index_select(0, index)
        self.next_ids = self.next_ids.index_select(0, index)
        return done

    def _score_forced(self, done: list[Row]) -> None:
        """Forced-choice scores of the finished rows, from a copy of their slice of the cache."""
        import torch

        picked = [i for i, row in enumerate(self.rows) if row.reason is not None]
        # The token sampled last is not in the cache yet; an EOS is not part of the reply.
        pending = [[] if row.reason == "eos" or not row.written else row.written[-1:] for row in done]
        index = torch.tensor(picked, device=self.mask.device)
        scores = self.forced.score(self.model, self.cache, index, self.mask, self.last_position, pending)
        for row, row_scores in zip(done, scores, strict=True):
            row.forced = dict(zip(self.forced.labels, row_scores, strict=True))

    def add(self, rows: list[Row]) -> None:
        """Prefill new rows, sample their first token and merge them into the batch."""
        import torch

        layers, mask, positions, logits = self._prefill(rows)
        chosen = self._sample(logits, rows)
        self._accept(rows, chosen)
        next_ids = torch.tensor(chosen, device=mask.device)
        # Room for every step until the next merge: no row lives more than max_new_tokens steps.
        room = self.params.max_new_tokens + 1
        if self.cache is None:
            self.cache = layers if self.chunk is None else roomy_cache(layers, room, self.model.config)
            self.rows, self.mask = list(rows), mask
            self.last_position, self.next_ids = positions, next_ids
            return
        self.cache = roomy_cache(_stack_layers([plain_layers(self.cache), layers]), room, self.model.config)
        self.mask = _stack_masks([self.mask, mask])
        self.last_position = torch.cat([self.last_position, positions])
        self.next_ids = torch.cat([self.next_ids, next_ids])
        self.rows += rows

    def _prefill(self, rows: list[Row]):
        """Run the rows' prompts, ``self.chunk`` rows a forward pass (all at once when None).

        Returns the cache (its (keys, values) per layer when chunked, else the model's own
        cache object), the attention mask, each row's last position and its next-token logits.
        """
        import torch

        if self.chunk is None:
            return self._prefill_chunk(rows)
        starts = range(0, len(rows), self.chunk)
        parts = [self._prefill_chunk(rows[start : start + self.chunk]) for start in starts]
        caches, masks, positions, logits = zip(*parts, strict=True)
        layers = _stack_layers([plain_layers(cache) for cache in caches])
        return layers, _stack_masks(masks), torch.cat(positions), torch.cat(logits)

    def _prefill_chunk(self, rows: list[Row]):
        return prefill(self.model, self.tokenizer, [r.prompt for r in rows], self.prefix)


def prefill(model, tokenizer, prompts: list[list[int]], prefix):
    """Run prompts that start with an already-run ``prefix`` in one left-padded pass.

    Returns the cache, the attention mask, each row's last position and its next-token logits.
    """
    from transformers import DynamicCache

    ids, mask, positions, cache = inputs_after_prefix(tokenizer, model, prompts, prefix)
    if cache is None:
        cache = DynamicCache(config=model.config)
    logits = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    ).logits[:, -1, :]
    return cache, mask, positions[:, -1].clone(), logits


def inputs_after_prefix(tokenizer, model, prompts: list[list[int]], prefix):
    """One left-padded pass's inputs for prompts that may start with an already-run prefix.

    ``prefix`` is (length, (keys, values) per layer) of the tokens every prompt starts with, or
    (0, None). Each row runs only its own tokens and attends to a copy of the prefix's cache,
    made with room for them (:func:`inputs_on_cache`).

    Returns input ids, attention mask, position ids and the cache to extend (None without a
    prefix).
    """
    import torch

    shared, head = prefix
    rows = len(prompts)
    layers = [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in head] if shared else None
    head_mask = torch.ones(rows, shared, dtype=torch.long, device=model.device)
    return inputs_on_cache(tokenizer, model, [p[shared:] for p in prompts], head_mask, layers, shared)


def inputs_on_cache(tokenizer, model, tails: list[list[int]], head_mask, layers, starts):
    """One left-padded pass's inputs for rows whose leading tokens are already in a cache.

    Row r runs ``tails[r]`` on top of ``layers`` (its (keys, values) per layer, or None when
    nothing ran before), whose positions ``head_mask[r]`` marks real. ``starts`` is each row's
    count of real tokens before its tail (a number or a column). Left padding goes between the
    cached tokens and the tail, where the mask hides it; positions count real tokens only, so
    padding never shifts RoPE.

    Returns input ids, attention mask, position ids and the cache to extend (None without
    ``layers``).
    """
    import torch

    padded = tokenizer.pad({"input_ids": tails}, return_tensors="pt", padding=True)
    own = padded["attention_mask"].to(model.device)
    cache = None if layers is None else roomy_cache(layers, own.shape[1], model.config)
    mask = torch.cat([head_mask.to(own.dtype), own], dim=1)
    positions = starts + (own.cumsum(-1) - 1).clamp(min=0)
    return padded["input_ids"].to(model.device), mask, positions, cache


def _stack_masks(masks):
    """Stack attention masks along the batch, left-padding the narrower ones."""
    import torch

    width = max(m.shape[1] for m in masks)
    return torch.cat([_left_pad(m, width) for m in masks], dim=0)


def _left_pad(tensor, width: int, dim: int = 1):
    """Zero-pad ``tensor`` on the left of ``dim`` up to ``width`` (masked-out positions)."""
    import torch

    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _stack_layers(caches: list[list[tuple]]) -> list[tuple]:
    """Stack plain caches' (keys, values) layers along the batch, left-padding the shorter ones
    in time (masked-out positions)."""
    import torch

    if len(caches) == 1:  # a top-up of a few rows: nothing to stack, nothing to copy
        return caches[0]
    layers = []
    for parts in zip(*caches, strict=True):
        width = max(keys.shape[2] for keys, _ in parts)
        keys = torch.cat([_left_pad(k, width, dim=2) for k, _ in parts], dim=0)
        values = torch.cat([_left_pad(v, width, dim=2) for _, v in parts], dim=0)
        layers.append((keys, values))
    return layers
