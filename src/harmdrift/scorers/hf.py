"""Any Hugging Face sequence classifier as a toxicity scorer."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from harmdrift.core.io import file_sha256
from harmdrift.scorers.base import ScorerConfig, batched, check_label, resolve_device

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Hugging Face sequence classifiers
# ---------------------------------------------------------------------------------------------


def _folder_sha256(folder: Path) -> str:
    """One sha256 over every file's name and hash, so any change to weights, config or tokenizer shows."""

    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{path.relative_to(folder).as_posix()}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _hub_revision(model: str) -> str | None:
    """The commit a hub id resolved to, read from the cached snapshot folder's name (None if unknown)."""
    try:
        from transformers.utils import cached_file

        path = Path(cached_file(model, "config.json"))
    except Exception:  # provenance is best effort; loading already succeeded
        return None
    return path.parent.name if path.parent.parent.name == "snapshots" else None


class HFClassifierScorer:
    """Any ``AutoModelForSequenceClassification``: softmax over labels, or sigmoid per label when
    the model was trained multi-label. The weights load on first use, so a fully cached run
    never loads them; the label is checked at construction from the config alone."""

    name = "hf"

    def __init__(self, cfg: ScorerConfig) -> None:
        """Read the model's config and check ``cfg.label`` against its labels.

        Raises:
            OSError: the model id or folder cannot be read.
            ValueError: ``label`` is not one of the model's labels.
        """
        from transformers import AutoConfig

        self.cfg = cfg
        try:
            self.config = AutoConfig.from_pretrained(cfg.model)
        except OSError as error:
            raise OSError(f"config key audit.scorer.model: cannot load {cfg.model!r}: {error}") from error
        id2label = {int(i): name for i, name in self.config.id2label.items()}
        self.labels = tuple(id2label[i] for i in sorted(id2label))
        check_label(cfg.label, self.labels, cfg.model)
        self.multi_label = self.config.problem_type == "multi_label_classification"
        self._model = None
        self._tokenizer = None
        self._described: dict | None = None

    def _load(self) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.device = resolve_device(self.cfg.device)
        self._tokenizer = AutoTokenizer.from_pretrained(self.cfg.model)
        model = AutoModelForSequenceClassification.from_pretrained(self.cfg.model)
        self._model = model.to(self.device).eval()
        # Tokenizers saved without a limit report a huge model_max_length; the position
        # embeddings are the real limit then, and going past them fails inside the model.
        # (RoBERTa has 514 positions for 512 tokens, but its tokenizer carries the 512.)
        limits = [
            self.cfg.max_length,
            self._tokenizer.model_max_length,
            getattr(self.config, "max_position_embeddings", None),
        ]
        self.max_length = min(limit for limit in limits if isinstance(limit, int) and limit > 0)
        logger.info(
            "hf toxicity scorer %s on %s (max_length %d)", self.cfg.model, self.device, self.max_length
        )

    def describe(self) -> dict:
        if self._described is None:
            from transformers import __version__ as transformers_version

            folder = Path(self.cfg.model)
            described = {
                "scorer": "hf",
                "kind": "hf",
                "model": self.cfg.model,
                "labels": list(self.labels),
                "activation": "sigmoid" if self.multi_label else "softmax",
                # Truncation changes the scores of long texts, so it belongs to the provenance.
                "max_length": self.cfg.max_length,
                "transformers": transformers_version,
            }
            if folder.is_dir():
                described["folder_sha256"] = _folder_sha256(folder)
            else:
                described["revision"] = _hub_revision(self.cfg.model)
            self._described = described
        return self._described

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """One ``{label: probability}`` per text, ``batch_size`` texts per forward pass."""
        import torch

        if self._model is None:
            self._load()
        results: list[dict[str, float]] = []
        with torch.inference_mode():
            for chunk in batched(texts, self.cfg.batch_size):
                inputs = self._tokenizer(
                    chunk, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
                ).to(self.device)
                logits = self._model(**inputs).logits.float()
                probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
                for row in probs.cpu().tolist():
                    results.append(dict(zip(self.labels, row, strict=True)))
        return results
