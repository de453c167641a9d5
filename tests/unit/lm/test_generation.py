"""The generation backend on a tiny random model: seeding, stopping, dtype, errors."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch

from harmdrift.core.decoding import GenParams, item_seed
from harmdrift.lm import groups
from harmdrift.lm.engine import HFGenerator, HFModelConfig
from harmdrift.lm.sampler import TokenSampler

CONVERSATIONS = [
    [{"role": "user", "content": "is the question the same"}],
    [{"role": "user", "content": "groups are treated differently because law"}],
    [{"role": "user", "content": "a fact"}],
    [{"role": "user", "content": "this answer is so the same groups treated a fact yes no"}],
    [{"role": "user", "content": "law"}],
]
KEYS = ["q0", "q1", "q2", "q3", "q4"]


def make(tiny_model, **kwargs) -> HFGenerator:
    cfg = HFModelConfig(model=tiny_model, dtype="float32", device="cpu", **kwargs)
    return HFGenerator(cfg, progress=False)


def test_item_seed_is_stable_and_distinct():
    assert item_seed(1, "a") == item_seed(1, "a")
    assert item_seed(1, "a") != item_seed(2, "a")
    assert item_seed(1, "a") != item_seed(1, "b")
    assert 0 <= item_seed(0, "x") < 2**63


def test_same_item_same_reply_whatever_the_batch(tiny_model):
    params = GenParams(max_new_tokens=12, temperature=1.0, top_p=1.0, seed=7)
    whole = make(tiny_model, batch_size=5).generate(CONVERSATIONS, params, keys=KEYS)
    reordered = list(reversed(range(5)))
    pieces = make(tiny_model, batch_size=2, sort_by_length=False).generate(
        [CONVERSATIONS[i] for i in reordered], params, keys=[KEYS[i] for i in reordered]
    )
    assert [g.text for g in whole] == [pieces[reordered.index(i)].text for i in range(5)]


def test_seed_changes_the_sample(tiny_model):
    gen = make(tiny_model, batch_size=5)
    one = gen.generate(CONVERSATIONS, GenParams(max_new_tokens=12, temperature=1.0, seed=1), keys=KEYS)
    two = gen.generate(CONVERSATIONS, GenParams(max_new_tokens=12, temperature=1.0, seed=2), keys=KEYS)
    assert [g.text for g in one] != [g.text for g in two]


def test_greedy_matches_plain_transformers(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gen = make(tiny_model, batch_size=1)
    ours = gen.generate(CONVERSATIONS[:2], GenParams(max_new_tokens=8, temperature=0), keys=KEYS[:2])
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    for conv, got in zip(CONVERSATIONS[:2], ours, strict=True):
        ids = tok(gen.render(conv), return_tensors="pt", add_special_tokens=False)["input_ids"]
        out = model.generate(ids, do_sample=False, max_new_tokens=8, pad_token_id=tok.pad_token_id)
        assert got.text == tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def test_batched_greedy_matches_one_at_a_time(tiny_model):
    params = GenParams(max_new_tokens=10, temperature=0)
    batched = make(tiny_model, batch_size=5).generate(CONVERSATIONS, params, keys=KEYS)
    single = make(tiny_model, batch_size=1).generate(CONVERSATIONS, params, keys=KEYS)
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.finish_reason for g in batched] == [g.finish_reason for g in single]


def test_sampler_streams_survive_rows_leaving():
    logits = torch.zeros(3, 50)
    sampler = TokenSampler(GenParams(temperature=1.0, top_p=1.0, seed=5))
    a, b, c = (sampler.stream(k) for k in "abc")
    first = sampler.pick(logits, [a, b, c])
    later = sampler.pick(logits[:1], [c])  # rows a and b finished
    alone = sampler.stream("c")
    assert int(sampler.pick(logits[:1], [alone])[0]) == int(first[2])
    assert int(sampler.pick(logits[:1], [alone])[0]) == int(later[0])


def test_refilled_batches_match_fresh_ones(tiny_model):
    """Rows joining a running batch (continuous batching) decode exactly as on their own."""
    many = CONVERSATIONS * 3
    keys = [f"k{i}" for i in range(len(many))]
    params = GenParams(max_new_tokens=12, temperature=1.0, seed=11)

    def stop(text: str) -> bool:  # rows end at different steps, so rows join mid-flight
        return text.split()[-1:] in (["the"], ["a"], ["is"], ["law"])

    pooled = make(tiny_model, batch_size=4).generate(many, params, keys=keys, stop=stop)
    alone = make(tiny_model, batch_size=1).generate(many, params, keys=keys, stop=stop)
    assert len({g.n_new_tokens for g in pooled}) > 2  # the rows really did end at different times
    assert [g.text for g in pooled] == [g.text for g in alone]
    assert [g.n_new_tokens for g in pooled] == [g.n_new_tokens for g in alone]


def test_stop_ends_each_row_early(tiny_model):
    gen = make(tiny_model, batch_size=5)
    params = GenParams(max_new_tokens=30, temperature=1.0, seed=3)
    free = gen.generate(CONVERSATIONS, params, keys=KEYS)
    stopped = gen.generate(CONVERSATIONS, params, keys=KEYS, stop=lambda text: len(text.split()) >= 3)
    for a, b in zip(free, stopped, strict=True):
        if len(a.text.split()) >= 3:
            assert b.finish_reason == "stop"
            assert len(b.text.split()) == 3
            assert a.text.startswith(b.text)  # stopping early does not change what came before
        else:
            assert b.text == a.text


def test_finish_reason_length(tiny_model):
    out = make(tiny_model).generate(
        CONVERSATIONS[:1], GenParams(max_new_tokens=2, temperature=1.0, seed=0), keys=KEYS[:1]
    )[0]
    assert out.finish_reason in {"length", "eos"}
    assert out.n_new_tokens <= 2


def test_gumbel_processor_samples_the_tempered_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    params = GenParams(max_new_tokens=1, temperature=0.5, top_p=1.0, seed=0)
    draws = Counter()
    n = 4000
    for k in range(n):
        sampler = TokenSampler(params)
        draws[int(sampler.pick(logits, [sampler.stream(f"k{k}")])[0])] += 1
    expected = torch.softmax(logits[0] / 0.5, dim=-1)
    for token in range(4):
        p = float(expected[token])
        se = math.sqrt(p * (1 - p) / n)
        assert abs(draws[token] / n - p) < 5 * se + 1e-3


def test_top_p_filters_the_tail():
    logits = torch.tensor([[5.0, 4.9, -5.0, -6.0]])
    params = GenParams(max_new_tokens=1, temperature=1.0, top_p=0.9, seed=0)
    picked = set()
    for k in range(300):
        sampler = TokenSampler(params)
        picked.add(int(sampler.pick(logits, [sampler.stream(f"k{k}")])[0]))
    assert picked == {0, 1}


def test_4bit_generation_runs_on_the_cpu_and_is_seeded_per_item(tiny_model):
    from bitsandbytes.nn import Linear4bit

    generator = make(tiny_model, quantization="4bit")
    assert isinstance(generator.model.model.layers[0].self_attn.q_proj, Linear4bit)
    assert generator.quantization["method"] == "bitsandbytes-4bit"
    params = GenParams(max_new_tokens=6, temperature=1.0, top_p=1.0, seed=3)
    first = [g.text for g in generator.generate(CONVERSATIONS, params, keys=KEYS)]
    alone = generator.generate(CONVERSATIONS[2:3], params, keys=KEYS[2:3])[0].text
    assert alone == first[2]  # each item's reply follows its own key, not its batch


def test_keys_must_match_conversations(tiny_model):
    with pytest.raises(ValueError, match="keys"):
        make(tiny_model).generate(CONVERSATIONS, GenParams(), keys=KEYS[:2])


def test_wide_nucleus_falls_back_to_a_full_sort_and_stays_exact():
    logits = torch.zeros(1, 200)  # flat: the nucleus needs 180 tokens, more than the 64 candidates
    logits[0, 7] = 3.0
    params = GenParams(temperature=1.0, top_p=0.9, seed=0)
    sampler = TokenSampler(params)
    picks = Counter(int(sampler.pick(logits, [sampler.stream(f"k{k}")])[0]) for k in range(3000))
    p7 = math.exp(3.0) / (math.exp(3.0) + 199)
    assert abs(picks[7] / 3000 - p7 / 0.9) < 0.03  # renormalised within the nucleus
    assert len(picks) > 100


def test_candidate_path_matches_the_full_sort_path():
    torch.manual_seed(0)
    logits = torch.randn(8, 500) * 4
    params = GenParams(temperature=0.7, top_p=0.8, seed=3)
    narrow, wide = TokenSampler(params, candidates=500), TokenSampler(params, candidates=8)
    keys = [f"r{i}" for i in range(8)]
    for _ in range(5):
        a = narrow.pick(logits, [narrow.stream(k) for k in keys])
        b = wide.pick(logits, [wide.stream(k) for k in keys])
        assert a.tolist() == b.tolist()


def test_score_options_matches_the_models_own_probabilities(tiny_model):
    gen = make(tiny_model, batch_size=3)
    options = ["yes", "no", "the law"]
    scores = gen.score_options(CONVERSATIONS[:2], options)
    model, tok = gen.model, gen.tokenizer
    for conv, row in zip(CONVERSATIONS[:2], scores, strict=True):
        prompt = tok(gen.render(conv), add_special_tokens=False)["input_ids"]
        for option, got in zip(options, row, strict=True):
            ids = tok(option, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([prompt + ids])).logits[0].float().log_softmax(-1)
            want = sum(float(logits[len(prompt) - 1 + i, t]) for i, t in enumerate(ids))
            assert got == pytest.approx(want, abs=1e-3)


def test_single_token_options_take_one_pass_and_agree_with_the_general_path(tiny_model):
    gen = make(tiny_model, batch_size=2)
    tok = gen.tokenizer
    singles = [
        o for o in ("yes", "no", "a", "b", "c") if len(tok(o, add_special_tokens=False)["input_ids"]) == 1
    ]
    assert len(singles) >= 2, "the tiny tokenizer should have single-token options to test"
    fast = gen.score_options(CONVERSATIONS[:3], singles)
    # A multi-token option forces the general (one sequence per option) path for the same prompts.
    general = gen.score_options(CONVERSATIONS[:3], [*singles, "the law"])
    for row_fast, row_general in zip(fast, general, strict=True):
        assert row_fast == pytest.approx(row_general[: len(singles)], abs=1e-3)


@pytest.mark.parametrize("options", [["yes", "no"], ["yes", "the law"]])
def test_length_sorted_scoring_returns_scores_in_input_order(tiny_model, options):
    # Conversations of very different lengths, so sorting reorders them across batches.
    conversations = [CONVERSATIONS[0], [{"role": "user", "content": "word " * 60}], *CONVERSATIONS[1:4]]
    by_length = make(tiny_model, batch_size=2, sort_by_length=True).score_options(conversations, options)
    in_order = make(tiny_model, batch_size=2, sort_by_length=False).score_options(conversations, options)
    one_by_one = [make(tiny_model, batch_size=1).score_options([c], options)[0] for c in conversations]
    for got, unsorted, alone in zip(by_length, in_order, one_by_one, strict=True):
        assert got == pytest.approx(alone, abs=1e-3)
        assert unsorted == pytest.approx(alone, abs=1e-3)


# A judge-like block of instructions ahead of each row's own text: far more than MIN_SHARED_PREFIX tokens.
INSTRUCTIONS = "decide whether the law treats the groups the same or differently and answer yes or no " * 3
SHARED = [[{"role": "user", "content": INSTRUCTIONS + c[0]["content"]}] for c in CONVERSATIONS]


@pytest.mark.parametrize("options", [["yes", "no"], ["yes", "the law"]])
def test_a_shared_prefix_runs_once_and_changes_no_score(tiny_model, options, monkeypatch):
    gen = make(tiny_model, batch_size=5)
    # An exact repeat of a row and a row that is another's prefix bound the shared part from above.
    conversations = [*SHARED, SHARED[2], [{"role": "user", "content": INSTRUCTIONS.strip()}]]
    prompts = [gen.tokenizer(gen.render(c), add_special_tokens=False)["input_ids"] for c in conversations]
    assert gen._shared_length(prompts, 2) > 30
    heads = []
    forward = gen.model.forward

    def counting(*args, **kwargs):
        heads.append(kwargs["input_ids"].shape)
        return forward(*args, **kwargs)

    monkeypatch.setattr(gen.model, "forward", counting)
    shared = gen.score_options(conversations, options)
    monkeypatch.undo()
    # One pass over the shared tokens (a single row) for the whole call, then each batch's own
    # pass: at least two batches of 5 (7 prompts; 14 prompt-option sequences for "the law").
    assert [shape[0] for shape in heads].count(1) == 1 and heads[0][1] > 30, heads
    assert len(heads) >= 3, heads
    alone = [gen.score_options([c], options)[0] for c in conversations]
    for got, want in zip(shared, alone, strict=True):
        assert got == pytest.approx(want, abs=1e-5)


def _grouped_conversations() -> list[list[dict]]:
    """Judge-like rows: the shared instructions, then one of two long questions (each asked
    several times, as the check set asks about an item), then a short text of the row's own."""
    rng = random.Random(0)
    words = "the a groups are treated same differently because law fact answer is question so it".split()
    questions = [" ".join(rng.choice(words) for _ in range(40 + 8 * k)) for k in range(2)]
    endings = [" ".join(rng.choice(words) for _ in range(2 + k % 5)) for k in range(7)]
    asked = [f"{INSTRUCTIONS}{questions[k % 2]} {end}" for k, end in enumerate(endings)]
    return [[{"role": "user", "content": text}] for text in asked] + SHARED[:2]


@pytest.mark.parametrize("options", [["yes", "no"], ["yes", "the law"]])
def test_rows_sharing_a_long_opening_run_it_once_and_score_as_alone(tiny_model, options, monkeypatch):
    # Both questions' rows fit one batch, so their heads (of different lengths) are padded.
    gen = make(tiny_model, batch_size=8)
    conversations = _grouped_conversations()
    tokens = []
    forward = gen.model.forward

    def counting(*args, **kwargs):
        tokens.append(kwargs["input_ids"].numel())
        return forward(*args, **kwargs)

    monkeypatch.setattr(gen.model, "forward", counting)
    grouped = gen.score_options(conversations, options)
    grouped_tokens, tokens[:] = sum(tokens), []
    monkeypatch.setattr(groups, "MIN_GROUP_SHARE", 10**6)
    plain = gen.score_options(conversations, options)
    monkeypatch.undo()
    # Each question (40 or 48 words) runs once per batch, not once per row (padding included).
    assert grouped_tokens < 0.75 * sum(tokens), (grouped_tokens, sum(tokens))
    alone = [gen.score_options([c], options)[0] for c in conversations]
    for got, without, want in zip(grouped, plain, alone, strict=True):
        assert got == pytest.approx(want, abs=1e-5)
        assert without == pytest.approx(want, abs=1e-5)


def test_no_shared_prefix_for_one_row_or_a_short_common_start(tiny_model):
    gen = make(tiny_model)
    assert gen._shared_length([[1, 2, 3] * 20], 1) == 0
    assert gen._shared_length([[1, 2, 3, 4, 5], [1, 2, 3, 9, 9]], 1) == 0
    # Every row keeps `keep` tokens of its own: a row of 20 tokens shares at most 20 - keep.
    assert gen._shared_length([list(range(20)), list(range(40))], 3) == 17


MANY = CONVERSATIONS * 3
MANY_KEYS = [f"f{i}" for i in range(len(MANY))]


def _stop_on_word(text: str) -> bool:
    return text.split()[-1:] in (["the"], ["law"])


def _generate_capturing(gen: HFGenerator, params: GenParams, forced) -> tuple[list, dict[int, list[int]]]:
    """Generate and keep each reply's token ids (the EOS aside), as the engine wrote them."""
    written: dict[int, list[int]] = {}
    original = gen._to_generation

    def capture(row):
        written[row.index] = list(row.written)
        return original(row)

    gen._to_generation = capture
    try:
        outs = gen.generate(MANY, params, keys=MANY_KEYS, stop=_stop_on_word, forced=forced)
    finally:
        del gen._to_generation
    return outs, written


def _reference_scores(gen: HFGenerator, conversation, reply: list[int], choice) -> dict[str, float]:
    """The slow way: one fresh forward over prompt + reply + prefix (+ option) per option."""
    from harmdrift.lm.forced import option_token_ids

    tok = gen.tokenizer
    prompt = tok(gen.render(conversation), add_special_tokens=False)["input_ids"]
    prefix, options = option_token_ids(tok, choice)
    scores = {}
    for label, option in zip(choice.options, options, strict=True):
        ids = prompt + reply + prefix + option
        with torch.no_grad():
            logprobs = gen.model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
        start = len(ids) - len(option)
        scores[label] = sum(float(logprobs[start - 1 + j, t]) for j, t in enumerate(option))
    return scores


@pytest.mark.parametrize("batch_size", [1, 4, 8])  # 8: finished rows wait in the batch
@pytest.mark.parametrize("options", [("YES", "NO"), ("YES", "the law", "the fact")])
def test_forced_scores_match_a_fresh_forward_pass(tiny_model, batch_size, options):
    from harmdrift.lm.forced import ForcedChoice

    choice = ForcedChoice(options=options)
    gen = make(tiny_model, batch_size=batch_size)
    params = GenParams(max_new_tokens=6, temperature=1.0, seed=4)
    outs, written = _generate_capturing(gen, params, choice)
    assert {g.finish_reason for g in outs} == {"eos", "stop", "length"}
    assert len({len(gen.tokenizer(gen.render(c))["input_ids"]) for c in MANY}) > 3  # prompt lengths vary
    for i, out in enumerate(outs):
        assert set(out.forced_scores) == set(options)
        want = _reference_scores(gen, MANY[i], written[i], choice)
        for label in options:
            assert out.forced_scores[label] == pytest.approx(want[label], abs=1e-4), (i, out.finish_reason)


def test_forced_choice_leaves_the_sampled_replies_unchanged(tiny_model):
    from harmdrift.lm.forced import ForcedChoice

    params = GenParams(max_new_tokens=10, temperature=1.0, seed=11)
    gen = make(tiny_model, batch_size=4)
    plain = gen.generate(MANY, params, keys=MANY_KEYS, stop=_stop_on_word)
    forced = gen.generate(MANY, params, keys=MANY_KEYS, stop=_stop_on_word, forced=ForcedChoice())
    assert [g.text for g in forced] == [g.text for g in plain]
    assert [g.finish_reason for g in forced] == [g.finish_reason for g in plain]
    assert all(g.forced_scores is None for g in plain)
    assert all(g.forced_scores is not None for g in forced)


def test_forced_choice_tokens_and_prediction(tiny_model):
    from harmdrift.lm.forced import ForcedChoice, forced_prediction, option_token_ids

    tok = make(tiny_model).tokenizer
    prefix, options = option_token_ids(tok, ForcedChoice())
    assert tok.convert_ids_to_tokens(prefix) == ["Conclusion:"]
    assert [tok.convert_ids_to_tokens(o) for o in options] == [["YES"], ["NO"]]
    assert forced_prediction({"YES": -1.0, "NO": -2.0}) == "YES"
    assert forced_prediction({"YES": -3.0, "NO": -2.0}) == "NO"
    assert forced_prediction({"YES": -2.0, "NO": -2.0}) == "ABSTAIN"
    assert forced_prediction(None) is None
    with pytest.raises(ValueError, match="two distinct"):
        ForcedChoice(options=("YES", "YES"))


def test_prefill_in_chunks_matches_one_pass(tiny_model, monkeypatch):
    """New rows prefilled a few at a time and stacked decode exactly as from one prefill pass."""
    from harmdrift.lm import batch

    many = CONVERSATIONS * 2
    keys = [f"k{i}" for i in range(len(many))]
    params = GenParams(max_new_tokens=10, temperature=1.0, seed=3)
    one_pass = make(tiny_model, batch_size=10).generate(many, params, keys=keys)
    passes = []
    real = batch.LiveBatch._prefill_chunk

    def counted(self, rows):
        passes.append(len(rows))
        return real(self, rows)

    monkeypatch.setattr(batch, "PREFILL_ROWS", 3)
    monkeypatch.setattr(batch.LiveBatch, "_prefill_chunk", counted)
    chunked = make(tiny_model, batch_size=10).generate(many, params, keys=keys)
    assert passes == [3, 3, 3, 1]  # prompts of different lengths, so each chunk pads its own way
    assert [g.text for g in chunked] == [g.text for g in one_pass]
    assert [g.n_new_tokens for g in chunked] == [g.n_new_tokens for g in one_pass]


def test_generation_runs_a_shared_prefix_once_and_changes_no_reply(tiny_model, monkeypatch):
    """Prompts sharing a long opening: one pass over it per call, then the same replies, lengths
    and forced-choice scores as prefilling every prompt whole, with rows refilled mid-flight."""
    from harmdrift.lm import engine
    from harmdrift.lm.forced import ForcedChoice

    many = SHARED * 3
    keys = [f"s{i}" for i in range(len(many))]
    params = GenParams(max_new_tokens=8, temperature=1.0, seed=5)
    gen = make(tiny_model, batch_size=4)
    passes = []
    forward = gen.model.forward

    def counting(*args, **kwargs):
        passes.append(tuple(kwargs["input_ids"].shape))
        return forward(*args, **kwargs)

    monkeypatch.setattr(gen.model, "forward", counting)
    shared = gen.generate(many, params, keys=keys, stop=_stop_on_word, forced=ForcedChoice())
    monkeypatch.undo()
    heads = [shape for shape in passes if shape[0] == 1 and shape[1] > 30]
    assert len(heads) == 1 and passes[0] == heads[0], passes
    # Every later prefill runs only the rows' own tokens, far fewer than the shared opening.
    assert max(width for _, width in passes[1:]) < heads[0][1], passes
    monkeypatch.setattr(engine, "MIN_SHARED_PREFIX", 10**6)
    whole = gen.generate(many, params, keys=keys, stop=_stop_on_word, forced=ForcedChoice())
    assert len({g.n_new_tokens for g in whole}) > 2  # rows ended at different steps
    assert [g.text for g in shared] == [g.text for g in whole]
    assert [g.n_new_tokens for g in shared] == [g.n_new_tokens for g in whole]
    for a, b in zip(shared, whole, strict=True):
        assert a.forced_scores == pytest.approx(b.forced_scores, abs=1e-5)
