"""The scorer registry with the embedded toxicity model loaded (the registry with tiny models
and stand-ins: tests/unit/scorers/test_scorers.py)."""

from __future__ import annotations

import pytest

from harmdrift.scorers import make_scorer
from harmdrift.scorers.base import ScorerConfig, ToxicityScorer, screen_score
from harmdrift.scorers.embedded import LABELS, EmbeddedToxicityScorer


def test_make_scorer_plugs_in_the_embedded_scorer():
    scorer = make_scorer(ScorerConfig(kind="embedded", batch_size=2))
    assert isinstance(scorer, EmbeddedToxicityScorer)
    assert isinstance(scorer, ToxicityScorer)
    assert scorer.labels == LABELS
    assert scorer.describe()["kind"] == "embedded"
    neutral, insult = scorer.score(["Thanks, that is a fair point.", "you are a disgusting idiot"])
    assert screen_score(insult, "toxic") > 0.5 > screen_score(neutral, "toxic")


def test_make_scorer_checks_the_embedded_label():
    with pytest.raises(ValueError, match=r"'toxicity' is not a label of the embedded scorer"):
        make_scorer(ScorerConfig(kind="embedded", label="toxicity"))
