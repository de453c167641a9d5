"""Detoxify checkpoints, loaded from a local file or downloaded once by the detoxify package."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path

from harmdrift.core.io import file_sha256
from harmdrift.scorers.base import (
    DETOXIFY_URLS,
    ScorerConfig,
    batched,
    check_label,
    package_version,
    resolve_device,
)

DETOXIFY_PACKAGE = "detoxify==0.5.2"


# ---------------------------------------------------------------------------------------------
# Detoxify
# ---------------------------------------------------------------------------------------------


def _is_offline(host: str = "github.com", port: int = 443, timeout_s: float = 2.0) -> bool:
    """A cheap check before Detoxify tries a download that would otherwise hang or fail deep inside."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return False
    except OSError:
        return True


def _import_detoxify():
    try:
        import detoxify
    except ImportError as error:
        raise ImportError(
            "config key audit.scorer.kind: 'detoxify' needs the detoxify package: "
            f"pip install {DETOXIFY_PACKAGE}"
        ) from error
    return detoxify


class DetoxifyScorer:
    """Detoxify's multi-label toxicity models (sigmoid per label), from a local checkpoint or download."""

    name = "detoxify"

    def __init__(self, cfg: ScorerConfig) -> None:
        """Load the model, failing fast with a how-to when the package or the weights are missing.

        Raises:
            ImportError: the detoxify package is not installed.
            FileNotFoundError: ``checkpoint`` names a file that does not exist.
            ConnectionError: no checkpoint is set and this machine cannot download one.
            ValueError: ``label`` is not one of the model's labels.
        """
        self.cfg = cfg
        self.variant = cfg.model or "original"
        # Cheapest checks first: a mistyped path is reported even where detoxify is not installed.
        checkpoint = self._local_checkpoint()
        detoxify = _import_detoxify()
        if checkpoint is None:
            self._check_can_download()
        self.device = resolve_device(cfg.device)
        try:
            self.model = detoxify.Detoxify(model_type=self.variant, checkpoint=checkpoint, device=self.device)
        except OSError as error:
            # Even with a local checkpoint Detoxify fetches its base model's config and tokenizer
            # (e.g. bert-base-uncased) from the Hugging Face hub unless they are cached already.
            raise OSError(
                f"Detoxify ({self.variant}) could not load: {error}. Offline, its base model's config "
                "and tokenizer must already be in the Hugging Face cache (run it once with internet)."
            ) from error
        self.labels = tuple(self.model.class_names)
        check_label(cfg.label, self.labels, f"Detoxify {self.variant}")

    def _local_checkpoint(self) -> str | None:
        """The configured checkpoint file, checked to exist (None when Detoxify should download)."""
        if self.cfg.checkpoint is None:
            return None
        path = Path(self.cfg.checkpoint).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"config key audit.scorer.checkpoint: no such file {str(path)!r} "
                f"(the {self.variant} checkpoint is downloadable from {DETOXIFY_URLS[self.variant]})"
            )
        return str(path)

    def _check_can_download(self) -> None:
        """Fail in seconds, with a how-to, where Detoxify's download would fail deep inside torch.hub."""
        url = DETOXIFY_URLS[self.variant]
        if _is_offline():
            raise ConnectionError(
                f"Detoxify would download its {self.variant} checkpoint from {url}, but this machine is "
                "offline (HF_HUB_OFFLINE is set or github.com:443 is unreachable). Download that file on a "
                "machine with internet and set config key audit.scorer.checkpoint to its path, or use "
                "audit.scorer.kind 'embedded' (no download needed)."
            )

    def describe(self) -> dict:

        described = {
            "scorer": "detoxify",
            "kind": "detoxify",
            "model": self.variant,
            "package": f"detoxify=={package_version('detoxify')}",
            "labels": list(self.labels),
        }
        if self.cfg.checkpoint is not None:
            described["checkpoint"] = str(self.cfg.checkpoint)
            described["checkpoint_sha256"] = file_sha256(Path(self.cfg.checkpoint).expanduser())
        else:
            described["checkpoint"] = DETOXIFY_URLS[self.variant]
        return described

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """One ``{label: probability}`` per text, ``batch_size`` texts per ``predict`` call."""
        results: list[dict[str, float]] = []
        for chunk in batched(texts, self.cfg.batch_size):
            if not chunk:
                continue
            # With a list, predict returns {label: [score per text]}.
            predicted = self.model.predict(chunk)
            for i in range(len(chunk)):
                results.append({label: float(predicted[label][i]) for label in self.labels})
        return results
