"""Toxicity scorers behind one interface (texts in, label scores out), chosen by config.

A new scorer goes in its own module here and gets one line in ``make_scorer``."""

from __future__ import annotations

from pathlib import Path

from harmdrift.scorers.base import ScorerConfig, ToxicityScorer, check_label
from harmdrift.scorers.cache import CachedScorer
from harmdrift.scorers.detoxify import DetoxifyScorer
from harmdrift.scorers.embedded import EmbeddedToxicityScorer
from harmdrift.scorers.hf import HFClassifierScorer

# ---------------------------------------------------------------------------------------------
# Registry and cache
# ---------------------------------------------------------------------------------------------


def make_scorer(cfg: ScorerConfig, cache_dir: str | Path | None = None) -> ToxicityScorer:
    """The scorer ``cfg`` describes, with its label checked; wrapped in a :class:`CachedScorer`
    when ``cfg.cache`` is on and a ``cache_dir`` is given."""
    if cfg.kind == "embedded":
        scorer: ToxicityScorer = EmbeddedToxicityScorer()
        check_label(cfg.label, scorer.labels, "the embedded scorer")
    elif cfg.kind == "detoxify":
        scorer = DetoxifyScorer(cfg)
    else:
        scorer = HFClassifierScorer(cfg)
    if cfg.cache and cache_dir is not None:
        return CachedScorer(scorer, cache_dir, batch_size=cfg.batch_size)
    return scorer
