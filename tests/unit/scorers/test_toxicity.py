"""The embedded BiLSTM toxicity scorer against the package's own Keras outputs."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from harmdrift.scorers.embedded import LABELS, EmbeddedToxicityScorer, pad_front

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


def test_front_padding_and_truncation_keep_the_end():
    assert pad_front([[1, 2]], length=4) == [[0, 0, 1, 2]]
    assert pad_front([[1, 2, 3, 4, 5]], length=3) == [[3, 4, 5]]


def test_tokenizer_pickle_cannot_run_code(tmp_path):
    from harmdrift.scorers.embedded import KerasWordTokenizer

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        KerasWordTokenizer(path)


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
