"""Audit pairs for the judge tests of both tiers (the stub server in tests/unit/backends, the
real ``transformers serve`` in tests/workflow/backends)."""

from __future__ import annotations


def judge_pairs(n: int) -> list[dict]:
    """Screened pairs as pair_answers writes them (only the fields the judge reads matter)."""
    return [
        {
            "id": f"D1-{i}",
            "benchmark": "D1",
            "condition": "diff",
            "gold_label": "YES",
            "question": f"Question {i}? (a) law (b) fact (c) the same",
            "base": {"analysis": "the law is the same"},
            "tuned": {"analysis": "groups are treated differently because fact"},
            "delta": 0.2,
            "screened": True,
        }
        for i in range(n)
    ]
