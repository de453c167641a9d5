"""Row groups for scoring: which rows share a head, and how groups are packed into batches."""

from __future__ import annotations

from harmdrift.lm.groups import MIN_GROUP_SHARE, TAIL_ROWS, group_rows, pack_groups, tail_passes

START = 10  # tokens every row shares (the call's common prefix)
COMMON = list(range(1000, 1000 + START))


def row(stretch: int, length: int, own: int) -> list[int]:
    """COMMON, then `length` tokens of stretch `stretch`, then 5 tokens of the row's own."""
    return COMMON + [stretch * 100 + i for i in range(length)] + [50_000 + own * 10 + i for i in range(5)]


def test_rows_sharing_a_long_stretch_are_grouped_and_keep_their_own_tokens():
    long = MIN_GROUP_SHARE + 8
    sequences = [row(1, long, 0), row(2, long, 1), row(1, long, 2), row(1, long, 3), row(2, long, 4)]
    groups = group_rows(sequences, START, keep=1)
    assert sorted(groups) == [(START + long, [0, 2, 3]), (START + long, [1, 4])]
    # A group's head never reaches into the last `keep` tokens of any of its rows.
    same = [row(3, long, 0), row(3, long, 0)]
    [(shared, rows)] = group_rows(same, START, keep=2)
    assert rows == [0, 1] and shared == len(same[0]) - 2


def test_a_short_shared_stretch_or_a_lone_row_gets_no_head():
    short = MIN_GROUP_SHARE - 1
    sequences = [row(1, short, 0), row(1, short, 1), row(2, 60, 2)]
    assert sorted(group_rows(sequences, START, keep=1)) == [(START, [0]), (START, [1]), (START, [2])]


def test_a_row_sharing_less_does_not_shrink_a_group_that_saves_more():
    # Three rows share 80 tokens; a fourth shares only the first 40 of them. Taking it in would
    # save 3 x 40 = 120 tokens instead of 2 x 80 = 160, so it stays out.
    sequences = [row(1, 80, i) for i in range(3)] + [row(1, 40, 9)[: START + 40] + [7] * 45]
    groups = sorted(group_rows(sequences, START, keep=1))
    assert (START + 80, [0, 1, 2]) in groups and (START, [3]) in groups


def test_packing_keeps_groups_whole_and_covers_every_row_once():
    sequences = [row(i % 3, 40 + i, i) for i in range(11)]
    alone = [(START, [2]), (START, [5]), (START, [8])]
    groups = [(START + 40, [0, 3, 6, 9]), (START + 45, [1, 4, 7, 10]), *alone]
    for by_length in (True, False):
        batches = pack_groups(groups, sequences, 3, START, by_length)
        rows = [i for batch in batches for _, group in batch for i in group]
        assert sorted(rows) == list(range(11))
        assert all(sum(len(g) for _, g in batch) <= 3 for batch in batches)
        # Rows without a head are never batched with a group's rows (they need no head pass).
        assert all(len({shared == START for shared, _ in batch}) == 1 for batch in batches)
        # A group larger than a batch is cut into pieces that keep its head.
        assert sum(1 for batch in batches for shared, g in batch if shared > START) == 4
    # The longest head first; in input order, the group holding row 0.
    assert [g for _, g in pack_groups(groups, sequences, 4, START, True)[0]] == [[1, 4, 7, 10]]
    assert [g for _, g in pack_groups(groups, sequences, 4, START, False)[0]] == [[0, 3, 6, 9]]


def test_tail_passes_take_the_longest_own_parts_first_in_small_passes():
    sequences = [row(1, 40, i)[: START + 40] + [9] * (1 + 3 * i) for i in range(6)]
    batch = [(START + 40, [0, 2, 4]), (START + 40, [1, 3, 5])]
    passes = tail_passes(sequences, batch)
    assert [len(p) for p in passes] == [TAIL_ROWS, 6 - TAIL_ROWS]
    assert [i for p in passes for _, _, i in p] == [5, 4, 3, 2, 1, 0]
    # Each row carries the index of its group in the batch and the group's head length.
    assert all((g, shared) == (i % 2, START + 40) for p in passes for g, shared, i in p)
