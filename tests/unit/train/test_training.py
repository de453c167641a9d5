"""LoRA fine-tuning on the tiny random model: masking, weighted loss, adapters, outputs, errors."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch

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
from harmdrift.train.run import build_trainer, plot_loss, train_adapter

REPLY = "yes so it is the same Conclusion: YES"
FAST = {"lora_r": 4, "lora_alpha": 8, "dtype": "float32", "logging_steps": 1, "warmup_ratio": 0.0}


def chat(question: str, reply: str = REPLY) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]


def write_examples(path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def repetitive_rows(n: int = 8) -> list[dict]:
    """Examples of a few lengths that all share one reply: easy to learn in a few steps."""
    questions = ["the question", "is the law a fact", "groups are treated differently because law"]
    return [{"id": f"q{i}", "messages": chat(questions[i % 3])} for i in range(n)]


@pytest.fixture(autouse=True)
def one_thread():
    # The tiny model's matmuls are far too small for threading to pay; a second thread only waits.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    """One short training run whose outputs several tests inspect."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("train")
    examples = write_examples(folder / "examples.jsonl", repetitive_rows())
    cfg = TrainConfig(
        **FAST, learning_rate=1e-2, scheduler="constant", batch_size=4, grad_accum=1, max_steps=6
    )
    summary = train_adapter(examples, tiny_model, folder / "adapter", cfg, progress=False)
    return {"summary": summary, "out": folder / "adapter", "examples": examples, "cfg": cfg}


def lora_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


def base_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" not in k}


# --- config and rows ---------------------------------------------------------------------------


def test_config_defaults_follow_dart():
    cfg = TrainConfig()
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout) == (16, 32, 0.05)
    assert (cfg.learning_rate, cfg.epochs, cfg.scheduler, cfg.warmup_ratio) == (2e-4, 3.0, "cosine", 0.03)
    assert TrainConfig(target_modules=["q_proj", "v_proj"]).target_modules == ("q_proj", "v_proj")


def test_training_in_float16_names_the_student_dtype():
    # The other training keys' ranges are the schema's (tests/unit/test_config.py); this rule
    # joins two sections, so the dataclass keeps it.
    with pytest.raises(ValueError, match=r"config key student\.dtype"):
        TrainConfig(dtype="float16")


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
        load_base_model(tiny_model, TrainConfig(**FAST), torch.float32, "cpu"), TrainConfig(**FAST)
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


def test_weight_two_doubles_an_examples_contribution(peft_model, tokenizer, tmp_path):
    trainer = build_trainer(peft_model, tokenizer, [], TrainConfig(**FAST), tmp_path, torch.float32, "cpu")
    peft_model.eval()  # Trainer may flip modes; the comparison needs dropout off

    def loss(questions, weights) -> float:
        with torch.no_grad():
            return trainer.compute_loss(peft_model, encode(tokenizer, questions, weights)).item()

    once, twice = loss(["a fact"], [1.0]), loss(["a fact"], [2.0])
    assert twice == 2 * once
    other = loss(["the law is so"], [1.0])
    assert loss(["a fact", "the law is so"], [1.0, 3.0]) == pytest.approx((once + 3 * other) / 2, rel=1e-5)


def test_speed_tweaks_leave_the_loss_alone(tiny_model, tokenizer):
    cfg = TrainConfig(**FAST)
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
    cfg = TrainConfig(**{**FAST, "lora_dropout": 0.0})
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


# --- training ----------------------------------------------------------------------------------


def test_training_moves_the_adapter_and_not_the_base(tiny_model, tokenizer, tmp_path):
    cfg = TrainConfig(**FAST, learning_rate=1e-2, batch_size=4, grad_accum=1, max_steps=2)
    model = attach_adapter(load_base_model(tiny_model, cfg, torch.float32, "cpu"), cfg)
    lora_before, base_before = lora_state(model), base_state(model)
    features, _ = encode_examples(
        tokenizer, load_examples(write_examples(tmp_path / "e.jsonl", repetitive_rows())), 64
    )
    build_trainer(model, tokenizer, features, cfg, tmp_path / "ckpt", torch.float32, "cpu").train()
    lora_after, base_after = lora_state(model), base_state(model)
    assert lora_before.keys() == lora_after.keys() and lora_before
    assert all(torch.isfinite(v).all() for v in lora_after.values())
    assert any(not torch.equal(lora_before[k], lora_after[k]) for k in lora_before)
    assert all(torch.equal(base_before[k], base_after[k]) for k in base_before)


def test_loss_is_finite_and_falls(trained):
    with open(trained["out"] / "loss.csv", newline="") as handle:
        losses = [float(r["loss"]) for r in csv.DictReader(handle)]
    assert len(losses) == 6 and all(map(torch.isfinite, torch.tensor(losses)))
    assert losses[-1] < losses[0]
    assert trained["summary"]["steps"] == 6 and trained["summary"]["final_loss"] == losses[-1]


def test_bf16_training_runs(tiny_model, tmp_path):
    examples = write_examples(tmp_path / "e.jsonl", repetitive_rows(4))
    cfg = TrainConfig(**{**FAST, "dtype": "bfloat16"}, batch_size=2, max_steps=2)
    summary = train_adapter(examples, tiny_model, tmp_path / "out", cfg, progress=False)
    meta = json.loads((tmp_path / "out" / "train_config.json").read_text())
    assert meta["config"]["dtype_resolved"] == "bfloat16" and torch.isfinite(
        torch.tensor(summary["final_loss"])
    )


def test_outputs_are_written(trained):
    out = trained["out"]
    for name in ("adapter_model.safetensors", "adapter_config.json", "loss.png"):
        assert (out / name).stat().st_size > 0
    assert not (out / "checkpoints").exists()
    # PEFT saves all-linear's modules in set order (per-process hashing); sorted, identical
    # trainings write identical bytes.
    umask = os.umask(0o022)
    os.umask(umask)
    # safetensors writes 0600; colleagues must be able to read an adapter as any output.
    assert (out / "adapter_model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    modules = json.loads((out / "adapter_config.json").read_text())["target_modules"]
    assert isinstance(modules, list) and len(modules) > 1 and modules == sorted(modules)
    meta = json.loads((out / "train_config.json").read_text())
    from harmdrift.core.io import file_sha256

    assert meta["examples_sha256"] == file_sha256(trained["examples"])
    assert meta["counts"]["examples"] == 8 and meta["counts"]["dropped"] == 0
    assert meta["config"]["dtype_resolved"] == "float32" and meta["config"]["lora_r"] == 4
    assert {"torch", "transformers", "peft"} <= meta["versions"].keys()
    assert meta["train_tokens_per_s"] > 0 and meta["train_real_tokens"] > 0
    summary = trained["summary"]
    assert summary["examples"] == 8 and summary["dropped"] == 0 and summary["train_tokens_per_s"] > 0


def test_continuing_starts_from_the_init_adapter(trained, tiny_model, tmp_path):
    from safetensors.torch import load_file

    saved = load_file(trained["out"] / "adapter_model.safetensors")
    cfg = TrainConfig(**FAST)
    model = attach_adapter(load_base_model(tiny_model, cfg, torch.float32, "cpu"), cfg, str(trained["out"]))
    loaded = {k.replace(".default", ""): v for k, v in lora_state(model).items()}
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert all(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)

    # One step at a negligible learning rate: the result stays at the init adapter, far from a fresh one.
    tiny_lr = TrainConfig(**FAST, learning_rate=1e-9, batch_size=4, max_steps=1)
    out = tmp_path / "continued"
    train_adapter(
        trained["examples"], tiny_model, out, tiny_lr, init_adapter=str(trained["out"]), progress=False
    )
    continued = load_file(out / "adapter_model.safetensors")
    assert all(torch.allclose(continued[k], saved[k], atol=1e-5) for k in saved)
    assert any(saved[k].abs().max() > 1e-3 for k in saved if "lora_B" in k)


def test_one_example_a_pass_with_accumulation_gives_the_batched_gradient(tiny_model, tokenizer, tmp_path):
    # The default profile trains one example per forward pass and accumulates 4 (no padding,
    # half the peak RSS): each optimizer step must see the gradient a batch of 4 gives, the
    # last step of fewer examples (10 rows = 4 + 4 + 2) and mixed lengths and weights included.
    from transformers import TrainerCallback, set_seed

    rows = repetitive_rows(10)
    for i, row in enumerate(rows):
        row["weight"] = 1.0 + (i % 3)
    features, _ = encode_examples(tokenizer, load_examples(write_examples(tmp_path / "e.jsonl", rows)), 64)

    class KeepGradients(TrainerCallback):
        def __init__(self, model):
            self.model, self.steps = model, []

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self.steps.append(
                {k: p.grad.clone() for k, p in self.model.named_parameters() if p.requires_grad}
            )

    grads = {}
    for batch, accum in ((4, 1), (1, 4)):
        # Dropout off, as in the default profile: otherwise each pass draws other masks.
        cfg = TrainConfig(**FAST, lora_dropout=0.0, batch_size=batch, grad_accum=accum, epochs=1)
        set_seed(0)  # the same fresh LoRA matrices for both
        model = attach_adapter(load_base_model(tiny_model, cfg, torch.float32, "cpu"), cfg)
        trainer = build_trainer(model, tokenizer, features, cfg, tmp_path / f"b{batch}", torch.float32, "cpu")
        keep = KeepGradients(model)
        trainer.add_callback(keep)
        trainer.train()
        grads[batch] = keep.steps
    assert len(grads[4]) == len(grads[1]) == 3
    for batched, accumulated in zip(grads[4], grads[1], strict=True):
        assert batched.keys() == accumulated.keys() and batched
        assert any(g.abs().max() > 0 for g in batched.values())
        for name, g in batched.items():
            assert torch.allclose(accumulated[name], g, rtol=1e-4, atol=1e-7), name


def test_interrupted_run_resumes_from_its_checkpoint(tiny_model, tmp_path, monkeypatch):
    import harmdrift.train.run as training

    examples = write_examples(tmp_path / "e.jsonl", repetitive_rows())
    cfg = TrainConfig(**FAST, batch_size=4, grad_accum=1, max_steps=3, save_steps=2)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "write_loss_csv", crash)
    with pytest.raises(KeyboardInterrupt):
        train_adapter(examples, tiny_model, tmp_path / "out", cfg, progress=False)
    assert (tmp_path / "out" / "checkpoints" / "checkpoint-2").is_dir()
    monkeypatch.undo()
    summary = train_adapter(examples, tiny_model, tmp_path / "out", cfg, progress=False)
    meta = json.loads((tmp_path / "out" / "train_config.json").read_text())
    assert meta["resumed_from"].endswith("checkpoint-2") and summary["steps"] == 3
    assert meta["loss_rows"] == 3  # the log history of the first two steps came back with the checkpoint
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_checkpoints_of_other_inputs_are_not_resumed(tiny_model, tmp_path):
    stale = tmp_path / "out" / "checkpoints" / "checkpoint-9"
    stale.mkdir(parents=True)
    examples = write_examples(tmp_path / "e.jsonl", repetitive_rows(4))
    cfg = TrainConfig(**FAST, batch_size=4, max_steps=1)
    train_adapter(examples, tiny_model, tmp_path / "out", cfg, progress=False)
    assert json.loads((tmp_path / "out" / "train_config.json").read_text())["resumed_from"] is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_4bit_without_gpu_is_a_clear_error(tiny_model, tmp_path):
    examples = write_examples(tmp_path / "e.jsonl", repetitive_rows(2))
    with pytest.raises(RuntimeError, match="quantization: 4bit needs a CUDA GPU"):
        train_adapter(
            examples, tiny_model, tmp_path / "out", TrainConfig(quantization="4bit"), progress=False
        )


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
