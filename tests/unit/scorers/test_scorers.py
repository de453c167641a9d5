"""Toxicity scorers behind one interface: config checks, Detoxify's fail-fast paths, Hugging Face
classifiers (a tiny random model built here), the registry and the SQLite score cache."""

from __future__ import annotations

import json
import math
import sys
import types

import pytest

from harmdrift.scorers import detoxify as detoxify_scorer
from harmdrift.scorers import make_scorer
from harmdrift.scorers.base import ScorerConfig, ToxicityScorer, screen_score
from harmdrift.scorers.cache import CachedScorer, score_key
from harmdrift.scorers.detoxify import DetoxifyScorer
from harmdrift.scorers.hf import HFClassifierScorer

WORDS = ["you", "are", "a", "idiot", "thanks", "that", "is", "fair", "point", "nice", "day", "bad"]
TEXTS = ["you are a idiot", "thanks that is a fair point", "nice day"]


# --- config -----------------------------------------------------------------------------------


def test_config_defaults_are_the_embedded_scorer():
    cfg = ScorerConfig()
    assert (cfg.kind, cfg.label, cfg.batch_size, cfg.device, cfg.max_length, cfg.cache) == (
        "embedded",
        "toxic",
        64,
        "cpu",
        512,
        True,
    )


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"kind": "hf"}, "model"),
        ({"kind": "detoxify", "model": "huge"}, "model"),
        ({"kind": "embedded", "model": "s-nlp/roberta_toxicity_classifier"}, "model"),
        ({"kind": "hf", "model": "x", "checkpoint": "a.ckpt"}, "checkpoint"),
    ],
)
def test_keys_the_kind_would_ignore_are_named(kwargs, key):
    # Each key's own type and range is the schema's (tests/unit/test_config.py).
    with pytest.raises(ValueError, match=rf"config key audit\.scorer\.{key}:"):
        ScorerConfig(**kwargs)


def test_screen_score_reads_the_label_or_lists_the_labels():
    assert screen_score({"neutral": 0.25, "toxic": 0.75}, "toxic") == 0.75
    with pytest.raises(ValueError, match=r"'hate'.*\['neutral', 'toxic'\]"):
        screen_score({"neutral": 0.25, "toxic": 0.75}, "hate")


# --- Detoxify (the package is optional and never downloaded in tests) -------------------------


def test_detoxify_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "detoxify", None)  # makes `import detoxify` raise ImportError
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ImportError, match=r"pip install detoxify==0\.5\.2"):
        DetoxifyScorer(ScorerConfig(kind="detoxify", label="toxicity"))


def test_detoxify_missing_checkpoint_file_names_key_and_path(tmp_path):
    missing = tmp_path / "toxic_original.ckpt"
    with pytest.raises(FileNotFoundError, match=r"audit\.scorer\.checkpoint.*toxic_original\.ckpt"):
        DetoxifyScorer(ScorerConfig(kind="detoxify", label="toxicity", checkpoint=str(missing)))


class FakeDetoxify:
    """Stands in for ``detoxify.Detoxify``: records how it was built, scores by word count."""

    built: list[dict] = []

    def __init__(self, model_type="original", checkpoint=None, device="cpu"):
        FakeDetoxify.built.append({"model_type": model_type, "checkpoint": checkpoint, "device": device})
        self.class_names = ["toxicity", "insult"]
        self.calls: list[list[str]] = []

    def predict(self, texts):
        self.calls.append(list(texts))
        toxicity_scores = [min(1.0, len(t.split()) / 10) for t in texts]
        return {"toxicity": toxicity_scores, "insult": [1 - s for s in toxicity_scores]}


@pytest.fixture
def fake_detoxify(monkeypatch):
    FakeDetoxify.built = []
    module = types.ModuleType("detoxify")
    module.Detoxify = FakeDetoxify
    monkeypatch.setitem(sys.modules, "detoxify", module)
    return module


def test_detoxify_offline_fails_fast_with_the_download_url(fake_detoxify, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConnectionError) as caught:
        DetoxifyScorer(ScorerConfig(kind="detoxify", label="toxicity"))
    message = str(caught.value)
    assert detoxify_scorer.DETOXIFY_URLS["original"] in message
    assert "audit.scorer.checkpoint" in message
    assert FakeDetoxify.built == []  # never reached the download


def test_offline_detection_uses_a_quick_connect(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    seen = {}

    def refuse(address, timeout):
        seen.update(address=address, timeout=timeout)
        raise OSError("unreachable")

    monkeypatch.setattr(detoxify_scorer.socket, "create_connection", refuse)
    assert detoxify_scorer._is_offline() is True
    assert seen == {"address": ("github.com", 443), "timeout": 2.0}

    class Connection:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(detoxify_scorer.socket, "create_connection", lambda address, timeout: Connection())
    assert detoxify_scorer._is_offline() is False


def test_detoxify_with_local_checkpoint_scores_in_batches(fake_detoxify, tmp_path):
    checkpoint = tmp_path / "toxic_original-c1212f89.ckpt"
    checkpoint.write_bytes(b"weights")
    cfg = ScorerConfig(kind="detoxify", label="toxicity", checkpoint=str(checkpoint), batch_size=2)
    scorer = DetoxifyScorer(cfg)
    assert FakeDetoxify.built == [{"model_type": "original", "checkpoint": str(checkpoint), "device": "cpu"}]
    scores = scorer.score(TEXTS)
    assert scorer.model.calls == [TEXTS[:2], TEXTS[2:]]
    assert [s["toxicity"] for s in scores] == pytest.approx([0.4, 0.6, 0.2])
    described = scorer.describe()
    assert described["kind"] == "detoxify" and described["labels"] == ["toxicity", "insult"]
    assert len(described["checkpoint_sha256"]) == 64
    assert isinstance(scorer, ToxicityScorer)


def test_detoxify_label_must_be_one_of_its_labels(fake_detoxify, tmp_path):
    checkpoint = tmp_path / "c.ckpt"
    checkpoint.write_bytes(b"weights")
    # Detoxify calls the main label "toxicity", so the default "toxic" is caught at construction.
    with pytest.raises(ValueError, match=r"audit\.scorer\.label: 'toxic'.*\['toxicity', 'insult'\]"):
        DetoxifyScorer(ScorerConfig(kind="detoxify", checkpoint=str(checkpoint)))


# --- Hugging Face classifiers (tiny random model, built and saved locally) --------------------


def build_tiny_classifier(folder, multi_label: bool = False):
    """A 1-layer BERT with a 17-word vocabulary and labels neutral/toxic, saved to ``folder``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True)
    vocab = folder.parent / f"{folder.name}.vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizer(vocab=str(vocab))
    config = BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        initializer_range=0.5,  # the default 0.02 scores every text about the same
        id2label={0: "neutral", 1: "toxic"},
        label2id={"neutral": 0, "toxic": 1},
        problem_type="multi_label_classification" if multi_label else "single_label_classification",
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "softmax": build_tiny_classifier(root / "softmax"),
        "sigmoid": build_tiny_classifier(root / "sigmoid", multi_label=True),
    }


def hf_config(folder, **kwargs) -> ScorerConfig:
    return ScorerConfig(kind="hf", model=str(folder), **kwargs)


def test_hf_softmax_scores_are_probabilities(tiny_models):
    scorer = HFClassifierScorer(hf_config(tiny_models["softmax"]))
    assert scorer.labels == ("neutral", "toxic")
    scores = scorer.score(TEXTS)
    assert len(scores) == len(TEXTS)
    for s in scores:
        assert set(s) == {"neutral", "toxic"}
        assert all(0.0 <= v <= 1.0 for v in s.values())
        assert s["neutral"] + s["toxic"] == pytest.approx(1.0, abs=1e-6)
    # A random model still tells texts apart; identical scores would mean the inputs were lost.
    assert len({round(s["toxic"], 6) for s in scores}) == len(TEXTS)


def test_hf_batching_does_not_change_scores(tiny_models):
    one = HFClassifierScorer(hf_config(tiny_models["softmax"], batch_size=1)).score(TEXTS)
    three = HFClassifierScorer(hf_config(tiny_models["softmax"], batch_size=3)).score(TEXTS)
    for a, b in zip(one, three, strict=True):
        for label in ("neutral", "toxic"):
            assert a[label] == pytest.approx(b[label], abs=1e-5)


def test_hf_unknown_label_fails_at_construction_listing_labels(tiny_models):
    folder = tiny_models["softmax"]
    with pytest.raises(ValueError) as caught:
        HFClassifierScorer(hf_config(folder, label="hate"))
    message = str(caught.value)
    assert "config key audit.scorer.label: 'hate' is not a label of" in message
    assert str(folder) in message and "['neutral', 'toxic']" in message


def test_hf_label_check_loads_no_weights(tiny_models):
    scorer = HFClassifierScorer(hf_config(tiny_models["softmax"]))
    assert scorer._model is None  # the weights wait for the first score() call


def test_hf_multi_label_gives_independent_sigmoids(tiny_models):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tiny_models["sigmoid"]
    scores = HFClassifierScorer(hf_config(folder)).score(TEXTS)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.inference_mode():
        logits = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
    for s, row in zip(scores, logits.tolist(), strict=True):
        assert s["neutral"] == pytest.approx(1 / (1 + math.exp(-row[0])), abs=1e-5)
        assert s["toxic"] == pytest.approx(1 / (1 + math.exp(-row[1])), abs=1e-5)
    assert any(abs(s["neutral"] + s["toxic"] - 1.0) > 1e-3 for s in scores)


def test_hf_truncates_at_max_length(tiny_models):
    scorer = HFClassifierScorer(hf_config(tiny_models["softmax"], max_length=8))
    # [CLS] + 6 words + [SEP] fill 8 tokens: what follows must not change the score.
    head = "you are a idiot thanks that"
    short, long = scorer.score([head, long_text(head)])
    assert short["toxic"] == pytest.approx(long["toxic"], abs=1e-6)
    assert scorer.max_length == 8
    # With room for more tokens the tail counts; past the model's 64 positions it is cut, not a crash.
    (wider,) = HFClassifierScorer(hf_config(tiny_models["softmax"], max_length=16)).score([long_text(head)])
    assert wider["toxic"] != pytest.approx(long["toxic"], abs=1e-6)
    default = HFClassifierScorer(hf_config(tiny_models["softmax"]))
    assert len(default.score([long_text(head)])) == 1
    assert default.max_length == 64


def long_text(head: str) -> str:
    return head + " is fair point " * 40


def test_hf_describe_hashes_the_folder(tiny_models):
    softmax = HFClassifierScorer(hf_config(tiny_models["softmax"])).describe()
    sigmoid = HFClassifierScorer(hf_config(tiny_models["sigmoid"])).describe()
    assert softmax["kind"] == "hf" and softmax["labels"] == ["neutral", "toxic"]
    assert softmax["activation"] == "softmax" and sigmoid["activation"] == "sigmoid"
    assert len(softmax["folder_sha256"]) == 64
    assert softmax["folder_sha256"] != sigmoid["folder_sha256"]


# --- registry -----------------------------------------------------------------------------------


def test_make_scorer_builds_hf_and_wraps_in_the_cache(tiny_models, tmp_path):
    cfg = hf_config(tiny_models["softmax"])
    assert isinstance(make_scorer(cfg), HFClassifierScorer)
    cached = make_scorer(cfg, cache_dir=tmp_path)
    assert isinstance(cached, CachedScorer) and isinstance(cached.scorer, HFClassifierScorer)
    assert (tmp_path / "toxicity.sqlite").is_file()
    uncached = make_scorer(ScorerConfig(kind="hf", model=str(tiny_models["softmax"]), cache=False), tmp_path)
    assert isinstance(uncached, HFClassifierScorer)


# --- cache --------------------------------------------------------------------------------------


class CountingScorer:
    """Scores a text by its length and remembers every text it was asked to score."""

    labels = ("toxic",)

    def __init__(self, name: str = "counting", fail_on_call: int | None = None) -> None:
        self.name = name
        self.fail_on_call = fail_on_call
        self.calls: list[list[str]] = []

    def describe(self) -> dict:
        return {"kind": "fake", "model": self.name, "labels": list(self.labels)}

    def score(self, texts):
        self.calls.append(list(texts))
        if self.fail_on_call == len(self.calls):
            raise RuntimeError("interrupted")
        return [{"toxic": len(t) / 100} for t in texts]


def test_cache_second_call_scores_nothing_new(tmp_path):
    fake = CountingScorer()
    cached = CachedScorer(fake, tmp_path)
    first = cached.score(["a", "bb"])
    second = cached.score(["a", "bb"])
    assert first == second == [{"toxic": 0.01}, {"toxic": 0.02}]
    assert fake.calls == [["a", "bb"]]
    assert (cached.hits, cached.misses) == (2, 2)


class TwoLabelScorer(CountingScorer):
    """Labels in an order that sorting would change, as the embedded scorer's are."""

    labels = ("toxic", "insult")

    def score(self, texts):
        return [{"toxic": len(t) / 100, "insult": 0.5} for t in texts]


def test_scores_keep_the_labels_order_whether_computed_or_read_back(tmp_path):
    """The store sorts a value's keys; a record written from a warm cache must still be
    byte-identical to one written from a cold cache."""
    cold = CachedScorer(TwoLabelScorer(), tmp_path).score(["a"])
    warm = CachedScorer(TwoLabelScorer(), tmp_path).score(["a"])
    assert [list(s) for s in cold] == [list(s) for s in warm] == [["toxic", "insult"]]
    assert json.dumps(cold) == json.dumps(warm)


def test_cache_scores_only_misses_and_survives_reopening(tmp_path):
    fake = CountingScorer()
    CachedScorer(fake, tmp_path).score(["a", "bb"])
    reopened = CachedScorer(fake, tmp_path)
    assert reopened.score(["bb", "ccc", "ccc"]) == [{"toxic": 0.02}, {"toxic": 0.03}, {"toxic": 0.03}]
    assert fake.calls == [["a", "bb"], ["ccc"]]  # the repeated "ccc" is scored once
    assert (reopened.hits, reopened.misses) == (1, 1)


def test_cache_keys_depend_on_describe(tmp_path):
    one, other = CountingScorer("one"), CountingScorer("other")
    assert score_key(one.describe(), "a") != score_key(other.describe(), "a")
    assert score_key(one.describe(), "a") != score_key(one.describe(), "b")
    CachedScorer(one, tmp_path).score(["a"])
    CachedScorer(other, tmp_path).score(["a"])
    assert other.calls == [["a"]]


def test_cache_commits_each_batch(tmp_path):
    fake = CountingScorer(fail_on_call=2)
    cached = CachedScorer(fake, tmp_path, batch_size=2)
    with pytest.raises(RuntimeError, match="interrupted"):
        cached.score(["a", "bb", "ccc", "dddd"])
    resumed = CountingScorer()
    again = CachedScorer(resumed, tmp_path, batch_size=2)
    assert len(again) == 2
    again.score(["a", "bb", "ccc", "dddd"])
    assert resumed.calls == [["ccc", "dddd"]]
