"""Scoring passes that run the leading tokens a few rows share once, not once per row.

Every prompt of a scoring call shares the instruction block, which the engine runs once per
call (``HFGenerator._run_prefix``). Rows often share more than that with a few others: the
judge's check set asks about each audit item several times (five kinds of pair, two orders),
so those prompts also share the question, the gold answer and often the first explanation.
On the default check set (240 prompts of 554-772 tokens, 381 of them the instruction block)
grouping rows by such a stretch leaves 27% fewer tokens to run. A batch of groups then takes
two passes: one over each group's shared stretch (a "head"), one over each row's own tokens
on top of a copy of its group's head.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from harmdrift.lm.batch import inputs_on_cache, prefill
from harmdrift.lm.kv import plain_layers

# A shared stretch shorter than this (after the call's common prefix) is left to each row.
MIN_GROUP_SHARE = 32
# The longest run of rows considered as one group (a larger group is split into batches anyway).
MAX_GROUP_ROWS = 64
# Rows per pass over the rows' own tokens once their heads are run: sorted by length, small
# passes pad little (a group's rows end in explanations of very different lengths).
TAIL_ROWS = 4

Group = tuple[int, list[int]]  # (shared length, row indices)


def group_rows(sequences: Sequence[list[int]], start: int, keep: int) -> list[Group]:
    """Rows grouped by the leading tokens they share beyond the first ``start`` (shared by all).

    In token order, rows with long common openings sit next to each other, so groups are runs
    of that order; the runs are chosen to save the most tokens (a group of n rows sharing s
    tokens past ``start`` saves (n - 1) x s), by dynamic programming over runs of at most
    ``MAX_GROUP_ROWS`` rows. Each row keeps at least ``keep`` tokens of its own, whose logits
    are read.

    Returns:
        ``(shared, rows)`` per group, ``rows`` in input order; ``shared == start`` for a row
        that shares no more than that.
    """
    order = sorted(range(len(sequences)), key=lambda i: sequences[i])
    n = len(order)
    # What a run shares is the least of its neighbours' common openings, computed once.
    adjacent = [
        len(os.path.commonprefix([sequences[order[i]], sequences[order[i + 1]]])) for i in range(n - 1)
    ]
    best = [0] * (n + 1)  # best[j]: the most tokens saved over the first j rows in order
    cut: list[tuple[int, int]] = [(0, start)] * (n + 1)  # where best[j]'s last run starts, its share
    for j in range(n):
        shared = len(sequences[order[j]]) - keep
        best[j + 1], cut[j + 1] = best[j], (j, start)
        for i in range(j - 1, max(-1, j - MAX_GROUP_ROWS), -1):
            shared = min(shared, len(sequences[order[i]]) - keep, adjacent[i])
            if shared - start < MIN_GROUP_SHARE:
                break  # shares only shrink as the run grows
            saved = best[i] + (j - i) * (shared - start)
            if saved > best[j + 1]:
                best[j + 1], cut[j + 1] = saved, (i, shared)
    groups = []
    j = n
    while j > 0:
        i, shared = cut[j]
        rows = sorted(order[i:j])
        groups += [(shared, rows)] if len(rows) > 1 else [(start, rows)]
        j = i
    return groups[::-1]


def pack_groups(
    groups: list[Group], sequences: Sequence[list[int]], size: int, start: int, by_length: bool
) -> list[list[Group]]:
    """Batches of at most ``size`` rows: groups that share a head are kept together (a group
    larger than a batch is split into pieces with the same head), and rows on their own are
    batched apart from them, since they need no head pass.

    With ``by_length``, the longest heads (or rows) come first and a batch holds ones of similar
    lengths, so it pads little; otherwise rows keep their input order.
    """

    def head(group: Group) -> int:
        return group[0]

    def longest(group: Group) -> int:
        return max(len(sequences[i]) for i in group[1])

    def first(group: Group) -> int:
        return group[1][0]

    heads = [g for g in groups if g[0] > start]
    alone = [(start, [i]) for shared, rows in groups if shared == start for i in rows]
    batches = []
    # Heads of similar lengths share a head pass; rows alone, of similar total lengths.
    for kind, length in ((heads, head), (alone, longest)):
        kind.sort(key=length if by_length else first, reverse=by_length)
        batch: list[Group] = []
        for shared, rows in kind:
            for piece in (rows[k : k + size] for k in range(0, len(rows), size)):
                if sum(len(r) for _, r in batch) + len(piece) > size:
                    batches.append(batch)
                    batch = []
                batch.append((shared, piece))
        if batch:
            batches.append(batch)
    return batches


def tail_passes(sequences: Sequence[list[int]], batch: list[Group]) -> list[list[tuple[int, int, int]]]:
    """The rows of a batch of groups, as ``(group, shared length, row)``, in passes of
    ``TAIL_ROWS`` rows over their own tokens, longest first, so each pass pads little."""
    rows = [(g, shared, i) for g, (shared, group) in enumerate(batch) for i in group]
    rows.sort(key=lambda r: len(sequences[r[2]]) - r[1], reverse=True)
    return [rows[k : k + TAIL_ROWS] for k in range(0, len(rows), TAIL_ROWS)]


def inputs_after_heads(
    tokenizer, model, sequences: Sequence[list[int]], heads, rows: list[tuple[int, int, int]]
):
    """One left-padded pass's inputs for rows continuing their group's already-run head.

    ``heads`` is the mask and (keys, values) per layer of the heads' pass (one row per group,
    left-padded after the call's common prefix); ``rows`` holds ``(group, shared length,
    row)`` as :func:`tail_passes` gives them. Padding between a row's head and its own tokens
    is masked; positions count real tokens only, as in a plain pass over the whole row.

    Returns input ids, attention mask, position ids and the cache to extend.
    """
    import torch

    head_mask, layers = heads
    pick = torch.tensor([g for g, _, _ in rows], device=model.device)
    layers = [(k.index_select(0, pick), v.index_select(0, pick)) for k, v in layers]
    tails = [sequences[i][shared:] for _, shared, i in rows]
    starts = torch.tensor([shared for _, shared, _ in rows], device=model.device)[:, None]
    return inputs_on_cache(tokenizer, model, tails, head_mask.index_select(0, pick), layers, starts)


def run_heads(model, tokenizer, sequences: Sequence[list[int]], batch: list[Group], prefix):
    """Run each group's head (its shared opening past the call's ``prefix``) in one pass.

    Returns the pass's attention mask and (keys, values) per layer, one row per group, for
    :func:`inputs_after_heads`.
    """
    heads = [sequences[group[0]][:shared] for shared, group in batch]
    cache, mask, _, _ = prefill(model, tokenizer, heads, prefix)
    return mask, plain_layers(cache)
