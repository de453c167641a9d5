"""The embedded toxicity scorer's pieces that need no model: front padding, the safe tokenizer
unpickler (the loaded model against the Keras outputs: tests/workflow/scorers/test_toxicity.py)."""

from __future__ import annotations

import pickle

import pytest

from harmdrift.scorers.embedded import pad_front


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
