"""What every toxicity scorer shares: its settings, its interface, and reading the screened label."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from harmdrift.core.runtime import pick_device

_DETOXIFY_RELEASES = "https://github.com/unitaryai/detoxify/releases/download/"


# Where Detoxify itself downloads each variant's checkpoint from (detoxify 0.5.2, MODEL_URLS).
DETOXIFY_URLS = {
    "original": _DETOXIFY_RELEASES + "v0.1-alpha/toxic_original-c1212f89.ckpt",
    "unbiased": _DETOXIFY_RELEASES + "v0.3-alpha/toxic_debiased-c7548aa0.ckpt",
    "multilingual": _DETOXIFY_RELEASES + "v0.4-alpha/multilingual_debiased-0b549669.ckpt",
    "original-small": _DETOXIFY_RELEASES + "v0.1.2/original-albert-0e1d6498.ckpt",
    "unbiased-small": _DETOXIFY_RELEASES + "v0.1.2/unbiased-albert-c8519128.ckpt",
}


# ---------------------------------------------------------------------------------------------
# One interface for every scorer, built from the ``audit.scorer`` config section.
# ---------------------------------------------------------------------------------------------


def _key_error(key: str, message: str) -> ValueError:
    return ValueError(f"config key audit.scorer.{key}: {message}")


@dataclass(frozen=True)
class ScorerConfig:
    """The ``audit.scorer`` config section: which classifier screens rationales, and how.

    Attributes:
        kind: "embedded" (the offline BiLSTM above), "detoxify" or "hf".
        label: which output label's score the screen reads (e.g. "toxic"; Detoxify calls
            it "toxicity").
        model: for "hf", a model id or local folder; for "detoxify", the variant
            ("original", "unbiased", "multilingual", ...; None means "original").
        checkpoint: for "detoxify", a local checkpoint file, so nothing is downloaded.
        batch_size: texts per forward pass (hf, detoxify; the embedded scorer takes one at a time).
        device: "cpu", "cuda" or "auto" (cuda when available).
        max_length: for "hf", texts are truncated at this many tokens.
        cache: whether scores are kept in the SQLite cache between runs.
    """

    kind: str = "embedded"
    label: str = "toxic"
    model: str | None = None
    checkpoint: str | None = None
    batch_size: int = 64
    device: str = "cpu"
    max_length: int = 512
    cache: bool = True

    def __post_init__(self) -> None:
        # Each key's type and range is config/schema.yaml's; what is left are the rules that
        # join a key to the chosen kind. Keys that the kind would silently ignore are errors:
        # they signal a config that does not do what its author thinks.
        if self.kind == "hf" and self.model is None:
            raise _key_error("model", "kind 'hf' needs a model id or local folder")
        if self.kind == "detoxify" and self.model is not None and self.model not in DETOXIFY_URLS:
            raise _key_error("model", f"{self.model!r} is not a Detoxify variant: {list(DETOXIFY_URLS)}")
        if self.kind == "embedded" and self.model is not None:
            raise _key_error("model", "kind 'embedded' has a single built-in model; leave model null")
        if self.kind != "detoxify" and self.checkpoint is not None:
            raise _key_error("checkpoint", f"only kind 'detoxify' reads a checkpoint, not {self.kind!r}")


@runtime_checkable
class ToxicityScorer(Protocol):
    """What the screen needs from a classifier."""

    labels: tuple[str, ...]

    def describe(self) -> dict:
        """Provenance (kind, model or checkpoint, hashes or versions, labels); part of cache keys."""
        ...

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """One ``{label: score in [0, 1]}`` per text, in order."""
        ...


def screen_score(scores: dict[str, float], label: str) -> float:
    """The score the screen reads: ``scores[label]``, or a ValueError listing the labels there are."""
    if label not in scores:
        raise ValueError(
            f"config key audit.scorer.label: {label!r} is not among the scorer's labels {sorted(scores)}"
        )
    return float(scores[label])


def check_label(label: str, labels: Sequence[str], source: str) -> None:
    """Fail before any scoring when the configured label is not one the model outputs."""
    if label not in labels:
        raise ValueError(
            f"config key audit.scorer.label: {label!r} is not a label of {source}; it has {list(labels)}"
        )


def resolve_device(device: str) -> str:
    """The scorer's device on this machine (see :func:`harmdrift.core.runtime.pick_device`)."""
    return pick_device(device, key="audit.scorer.device")


def batched(texts: Sequence[str], size: int):
    """Consecutive lists of at most ``size`` texts, in order (every scorer's batching)."""
    for start in range(0, len(texts), size):
        yield list(texts[start : start + size])


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
