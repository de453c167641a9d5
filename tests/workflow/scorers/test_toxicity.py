"""The embedded BiLSTM toxicity scorer, loaded, against the package's own Keras outputs (its
pieces without the model: tests/unit/scorers/test_toxicity.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harmdrift.scorers.embedded import LABELS, EmbeddedToxicityScorer

REFERENCE = json.loads((Path(__file__).parents[2] / "data" / "toxicity_reference.json").read_text())


@pytest.fixture(scope="module")
def scorer() -> EmbeddedToxicityScorer:
    return EmbeddedToxicityScorer()


def test_matches_the_keras_model(scorer):
    got = scorer.score(REFERENCE["texts"])
    for text, ours, theirs in zip(REFERENCE["texts"], got, REFERENCE["scores"], strict=True):
        for label in LABELS:
            assert ours[label] == pytest.approx(theirs[label], abs=2e-5), (text[:40], label)


def test_toxic_text_outscores_neutral_text(scorer):
    neutral, insult = scorer.score(["Thanks, that is a fair point.", "you are a disgusting idiot"])
    assert insult["toxic"] > 0.5 > neutral["toxic"]


def test_provenance_names_the_files(scorer):
    described = scorer.describe()
    assert described["package"] == "toxic-comment-classifier==0.3.0"
    assert len(described["weights_sha256"]) == 64


def test_a_texts_score_does_not_depend_on_the_texts_beside_it(scorer):
    # Behind the cache, the texts scored together depend on job order; scores must not.
    texts = [REFERENCE["texts"][0], *(f"reply number {n} says the answer is no" for n in range(70))]
    together = scorer.score(texts)
    assert scorer.score(texts[:1]) == together[:1]
    assert scorer.score(texts[:1] + texts[40:45]) == together[:1] + together[40:45]
