"""Decoding settings and the per-item random streams that make sampling independent of batching."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GenParams:
    """Decoding settings that change the output (and so belong in provenance and cache keys).

    Their ranges are config/schema.yaml's (the generation, teacher and judge sections).
    """

    max_new_tokens: int = 256
    temperature: float = 0.2
    top_p: float = 0.9
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def item_seed(seed: int, key: str) -> int:
    """A 63-bit seed for one item's random stream, stable across runs and machines."""
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode()).hexdigest()
    return int(digest[:15], 16)
