"""LoRA fine-tuning pieces on the tiny random model: rows, masking, collation, the weighted and
chunked loss (training runs, with the Trainer: tests/workflow/train/test_training.py)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import validated_default_config
from harmdrift.train.config import TrainConfig
from harmdrift.train.examples import (
    IGNORE_INDEX,
    WeightedChatCollator,
    encode_example,
    encode_examples,
    load_examples,
)
from harmdrift.train.loss import batch_losses, per_example_nll, weighted_loss
from harmdrift.train.model import attach_adapter, load_base_model, tune_for_speed
from harmdrift.train.run import plot_loss
from training_rows import FAST, REPLY, chat, train_cfg, write_examples

# --- config and rows ---------------------------------------------------------------------------


def test_config_is_built_from_the_schema_filled_sections():
    # No defaults in the dataclass: every value comes from the training and student sections
    # (DART's values are config/paper.yaml's: tests/unit/test_config.py).
    config = validated_default_config()
    cfg = train_cfg()
    assert {key: getattr(cfg, key) for key in config["training"]} == config["training"]
    assert (cfg.dtype, cfg.quantization) == (config["student"]["dtype"], config["student"]["quantization"])
    assert train_cfg(target_modules=["q_proj", "v_proj"]).target_modules == ("q_proj", "v_proj")
    with pytest.raises(TypeError):
        TrainConfig(lora_r=4)


def test_training_in_float16_names_the_student_dtype():
    # The other training keys' ranges are the schema's (tests/unit/test_config.py); this rule
    # joins two sections, so the dataclass keeps it.
    with pytest.raises(ValueError, match=r"config key student\.dtype"):
        train_cfg(dtype="float16")


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"id": "x"}, "messages"),
        ({"id": "x", "messages": [{"role": "user", "content": "a"}]}, "messages"),
        (
            {
                "id": "x",
                "messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}],
            },
            "last",
        ),
        ({"id": "x", "messages": chat("a"), "weight": 0}, "weight"),
        ({"id": "x", "messages": chat("a"), "weight": "2"}, "weight"),
        ({"id": "x", "messages": chat("a"), "weight": True}, "weight"),
        ({"id": "x", "messages": chat("a"), "weight": float("nan")}, "weight"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, row, reason):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "ok", "messages": chat("a")}) + "\n\n" + json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=rf"bad\.jsonl:3: .*{reason}"):
        load_examples(path)


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps({"messages": chat("a")}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"broken\.jsonl:2"):
        load_examples(path)


def test_weight_defaults_to_one(tmp_path):
    path = write_examples(tmp_path / "ok.jsonl", [{"id": "a", "messages": chat("a")}])
    assert load_examples(path)[0]["weight"] == 1.0


# --- tokenisation ------------------------------------------------------------------------------


def test_only_the_reply_and_eos_are_labelled(tokenizer):
    messages = chat("is the law a fact")
    encoded = encode_example(tokenizer, messages, max_length=64)
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    n = len(prompt_ids)
    assert encoded["input_ids"][:n] == prompt_ids
    assert encoded["labels"][:n] == [IGNORE_INDEX] * n
    kept = encoded["labels"][n:]
    assert IGNORE_INDEX not in kept and kept == encoded["input_ids"][n:]
    # The template ends the reply with no end-of-sequence token, so one is appended.
    assert tokenizer.convert_ids_to_tokens(kept) == REPLY.split() + ["<eos>"]


def test_long_examples_are_cut_or_dropped(tokenizer):
    messages = chat("the question is a fact")  # prompt: 7 tokens, reply: 8 + eos
    cut = encode_example(tokenizer, messages, max_length=10)
    assert cut["truncated"] and len(cut["input_ids"]) == 10 and cut["labels"][-3:] != [IGNORE_INDEX] * 3
    assert encode_example(tokenizer, messages, max_length=7) is None
    features, counts = encode_examples(
        tokenizer, [{"id": "a", "messages": messages, "weight": 1.0}] * 2, max_length=7
    )
    assert features == [] and counts["dropped"] == 2


def test_a_template_that_rewrites_the_prompt_is_refused(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}<assistant> the {% endif %}"
    )
    with pytest.raises(ValueError, match="does not start with its own prompt"):
        encode_example(tok, chat("a fact"), max_length=64)


def test_collator_pads_left_to_a_multiple_of_eight():
    features = [
        {"input_ids": [5, 6, 7], "labels": [IGNORE_INDEX, 6, 7], "weight": 1.0},
        {"input_ids": list(range(5, 14)), "labels": [IGNORE_INDEX] * 8 + [13], "weight": 2.5},
    ]
    batch = WeightedChatCollator(pad_token_id=0)(features)
    assert batch["input_ids"].shape == (2, 16)
    assert batch["input_ids"][0, -3:].tolist() == [5, 6, 7] and batch["input_ids"][0, :13].eq(0).all()
    assert batch["attention_mask"].sum(-1).tolist() == [3, 9]
    assert batch["position_ids"][0, -3:].tolist() == [0, 1, 2]
    assert batch["labels"][0, :14].eq(IGNORE_INDEX).all()
    assert batch["weights"].tolist() == [1.0, 2.5]


# --- loss --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def peft_model(tiny_model):
    model = attach_adapter(
        load_base_model(tiny_model, train_cfg(**FAST), torch.float32, "cpu"), train_cfg(**FAST)
    )
    with torch.no_grad():  # non-zero B matrices, so the adapter takes part in the forward pass
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    return model.eval()  # no dropout: the same batch gives the same loss


def encode(tokenizer, questions, weights):
    rows = [
        {"id": str(i), "messages": chat(q), "weight": w}
        for i, (q, w) in enumerate(zip(questions, weights, strict=True))
    ]
    features, _ = encode_examples(tokenizer, rows, max_length=64)
    return WeightedChatCollator(pad_token_id=tokenizer.pad_token_id)(features)


def test_padded_batch_gives_each_example_its_unpadded_loss(peft_model, tokenizer):
    import torch.nn.functional as F

    questions = ["a fact", "groups are treated differently because law so"]
    batch = encode(tokenizer, questions, [1.0, 1.0])
    with torch.no_grad():
        losses = batch_losses(peft_model, batch)
        for row, question in enumerate(questions):
            encoded = encode_example(tokenizer, chat(question), max_length=64)
            ids, labels = torch.tensor([encoded["input_ids"]]), torch.tensor(encoded["labels"])
            logits = peft_model(input_ids=ids).logits[0, :-1]
            expected = F.cross_entropy(logits, labels[1:], ignore_index=IGNORE_INDEX)
            assert losses[row].item() == pytest.approx(expected.item(), rel=1e-5)


def test_speed_tweaks_leave_the_loss_alone(tiny_model, tokenizer):
    cfg = train_cfg(**FAST)
    model = attach_adapter(load_base_model(tiny_model, cfg, torch.bfloat16, "cpu"), cfg).eval()
    batch = encode(tokenizer, ["a fact", "groups are treated differently because law so"], [1.0, 1.0])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        before = batch_losses(model, batch)
        tune_for_speed(model, cfg, torch.bfloat16)
        after = batch_losses(model, batch)
    assert torch.equal(before, after)


MIXED = ["a fact", "groups are treated differently because law so the question", "the law is so"]


def full_logits_losses(model, batch):
    """The reference: logits over every column, then the per-example reply NLL."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids")}
    return per_example_nll(model(**inputs).logits, batch["labels"])


@pytest.mark.parametrize("chunk_tokens", [None, 1, 4, 7])
def test_label_only_logits_give_the_full_logits_loss(peft_model, tokenizer, chunk_tokens):
    batch = encode(tokenizer, MIXED, [1.0, 2.5, 0.5])  # three lengths, so two rows are padded
    with torch.no_grad():
        expected = full_logits_losses(peft_model, batch)
        losses = batch_losses(peft_model, batch, chunk_tokens=chunk_tokens)
    torch.testing.assert_close(losses, expected, rtol=1e-5, atol=1e-5)
    weights = batch["weights"]
    total, reference = weighted_loss(losses, weights), weighted_loss(expected, weights)
    torch.testing.assert_close(total, reference, rtol=1e-5, atol=1e-5)


def test_chunked_loss_gives_the_full_logits_gradients(tiny_model, tokenizer):
    cfg = train_cfg(**{**FAST, "lora_dropout": 0.0})
    model = attach_adapter(load_base_model(tiny_model, cfg, torch.float32, "cpu"), cfg).train()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    batch = encode(tokenizer, MIXED, [1.0, 2.5, 0.5])

    def grads(losses) -> dict[str, torch.Tensor]:
        model.zero_grad()
        weighted_loss(losses, batch["weights"]).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    expected = grads(full_logits_losses(model, batch))
    chunked = grads(batch_losses(model, batch, chunk_tokens=3))  # several checkpointed chunks
    assert chunked.keys() == expected.keys() and expected
    for name, grad in expected.items():
        torch.testing.assert_close(chunked[name], grad, rtol=1e-5, atol=1e-6)


def test_the_output_layer_sees_only_label_positions_a_chunk_at_a_time(peft_model, tokenizer):
    batch = encode(tokenizer, MIXED, [1.0, 1.0, 1.0])
    seen = []
    head = peft_model.get_output_embeddings()
    handle = head.register_forward_hook(lambda module, args, out: seen.append(tuple(out.shape)))
    try:
        with torch.no_grad():
            batch_losses(peft_model, batch, chunk_tokens=4)
    finally:
        handle.remove()
    labels = int(batch["labels"].ne(IGNORE_INDEX).sum())
    assert sum(rows for rows, _ in seen) == labels < batch["labels"].numel()
    assert all(rows <= 4 for rows, _ in seen)


def test_models_with_scaled_logits_use_their_own_forward(peft_model, tokenizer, monkeypatch):
    # Granite scales its logits after the output layer; the head alone would not reproduce them.
    batch = encode(tokenizer, MIXED, [1.0, 1.0, 1.0])
    with torch.no_grad():
        expected = batch_losses(peft_model, batch)
        monkeypatch.setattr(peft_model.get_base_model().config, "logits_scaling", 1.0, raising=False)
        seen = []
        handle = peft_model.get_output_embeddings().register_forward_hook(
            lambda module, args, out: seen.append(tuple(out.shape))
        )
        try:
            fallback = batch_losses(peft_model, batch)
        finally:
            handle.remove()
    assert len(seen) == 1 and seen[0][0] == len(MIXED)  # the full forward, all rows at once
    torch.testing.assert_close(fallback, expected, rtol=1e-5, atol=1e-5)


# --- the loss plot, and the rule where nothing is trained (runs: tests/workflow/train) ---------


def test_plot_loss_writes_a_png(tmp_path):
    path = tmp_path / "loss.csv"
    path.write_text("step,epoch,loss,learning_rate\n1,0.1,2.0,0.001\n2,0.2,1.5,0.001\n")
    plot_loss(path, tmp_path / "loss.png", "test run")
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_repair_round_with_nothing_to_repair_keeps_the_parent_adapter(tmp_path):
    from harmdrift.train.rules import train_adapter as train_adapter_rule

    parent = tmp_path / "m_int"
    parent.mkdir()
    (parent / "adapter_model.safetensors").write_bytes(b"weights")
    (parent / "adapter_config.json").write_text("{}")
    empty = tmp_path / "train.jsonl"
    empty.write_text("")
    out = tmp_path / "m_dart"
    summary = train_adapter_rule(
        examples=empty,
        adapter=out / "adapter_model.safetensors",
        training={},
        student={},
        load_path="unused",
        init_adapter=str(parent),
    )
    assert summary["steps"] == 0 and "no drift left" in summary["skipped"]
    assert (out / "adapter_model.safetensors").read_bytes() == b"weights"
    meta = json.loads((out / "train_config.json").read_text())
    assert meta["init_adapter"] == str(parent) and meta["steps"] == 0
    assert (out / "loss.png").stat().st_size > 0
    assert (out / "loss.csv").read_text().startswith("step,")


def test_an_empty_training_file_without_a_parent_adapter_is_an_error(tmp_path, default_config):
    from harmdrift.train.rules import train_adapter as train_adapter_rule

    empty = tmp_path / "train.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="no training examples"):
        train_adapter_rule(
            examples=empty,
            adapter=tmp_path / "out" / "adapter_model.safetensors",
            training=default_config["training"],
            student=default_config["student"],
            load_path="x",
        )
