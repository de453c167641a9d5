"""Decoding settings and the per-item random streams that make sampling independent of batching."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GenParams:
    """Decoding settings that change the output (and so belong in provenance and cache keys)."""

    max_new_tokens: int = 256
    temperature: float = 0.2
    top_p: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def as_dict(self) -> dict:
        return asdict(self)


def item_seed(seed: int, key: str) -> int:
    """A 63-bit seed for one item's random stream, stable across runs and machines."""
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode()).hexdigest()
    return int(digest[:15], 16)
