"""LoRA training runs on the tiny random model (Trainer steps, checkpoints, outputs): the stage
as the workflow runs it, seconds each. Masking, collation and the loss are in tests/unit/train."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch

from harmdrift.train.examples import WeightedChatCollator, encode_examples, load_examples
from harmdrift.train.model import attach_adapter, load_base_model
from harmdrift.train.run import build_trainer, train_adapter
from training_rows import FAST, chat, repetitive_rows, train_cfg, write_examples


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    """One short training run whose outputs several tests inspect."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("train")
    examples = write_examples(folder / "examples.jsonl", repetitive_rows())
    cfg = train_cfg(**FAST, learning_rate=1e-2, scheduler="constant", batch_size=4, grad_accum=1, max_steps=6)
    summary = train_adapter(examples, tiny_model, folder / "adapter", cfg, progress=False)
    return {"summary": summary, "out": folder / "adapter", "examples": examples, "cfg": cfg}


def lora_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


def base_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" not in k}


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


def test_weight_two_doubles_an_examples_contribution(peft_model, tokenizer, tmp_path):
    trainer = build_trainer(peft_model, tokenizer, [], train_cfg(**FAST), tmp_path, torch.float32, "cpu")
    peft_model.eval()  # Trainer may flip modes; the comparison needs dropout off

    def loss(questions, weights) -> float:
        with torch.no_grad():
            return trainer.compute_loss(peft_model, encode(tokenizer, questions, weights)).item()

    once, twice = loss(["a fact"], [1.0]), loss(["a fact"], [2.0])
    assert twice == 2 * once
    other = loss(["the law is so"], [1.0])
    assert loss(["a fact", "the law is so"], [1.0, 3.0]) == pytest.approx((once + 3 * other) / 2, rel=1e-5)


def test_training_moves_the_adapter_and_not_the_base(tiny_model, tokenizer, tmp_path):
    cfg = train_cfg(**FAST, learning_rate=1e-2, batch_size=4, grad_accum=1, max_steps=2)
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
    cfg = train_cfg(**{**FAST, "dtype": "bfloat16"}, batch_size=2, max_steps=2)
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
    cfg = train_cfg(**FAST)
    model = attach_adapter(load_base_model(tiny_model, cfg, torch.float32, "cpu"), cfg, str(trained["out"]))
    loaded = {k.replace(".default", ""): v for k, v in lora_state(model).items()}
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert all(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)

    # One step at a negligible learning rate: the result stays at the init adapter, far from a fresh one.
    tiny_lr = train_cfg(**FAST, learning_rate=1e-9, batch_size=4, max_steps=1)
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
        cfg = train_cfg(**FAST, lora_dropout=0.0, batch_size=batch, grad_accum=accum, epochs=1)
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
    cfg = train_cfg(**FAST, batch_size=4, grad_accum=1, max_steps=3, save_steps=2)

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
    cfg = train_cfg(**FAST, batch_size=4, max_steps=1)
    train_adapter(examples, tiny_model, tmp_path / "out", cfg, progress=False)
    assert json.loads((tmp_path / "out" / "train_config.json").read_text())["resumed_from"] is None


def test_qlora_trains_an_adapter_on_nf4_weights_and_says_so(tiny_model, tmp_path):
    """QLoRA on the CPU: the base loads as bitsandbytes NF4, the LoRA learns, the adapter loads
    back onto the same 4-bit base for generation, and both records name the quantisation."""
    from bitsandbytes.nn import Linear4bit

    from harmdrift.core.decoding import GenParams
    from harmdrift.lm.engine import HFGenerator, HFModelConfig

    base = load_base_model(tiny_model, train_cfg(**FAST, quantization="4bit"), torch.float32, "cpu")
    assert isinstance(base.model.layers[0].mlp.up_proj, Linear4bit)
    examples = write_examples(tmp_path / "e.jsonl", repetitive_rows(8))
    cfg = train_cfg(**FAST, quantization="4bit", learning_rate=1e-2, batch_size=4, grad_accum=1, max_steps=6)
    summary = train_adapter(examples, tiny_model, tmp_path / "out", cfg, progress=False)
    with open(tmp_path / "out" / "loss.csv") as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert summary["steps"] == 6 and losses[-1] < losses[0]
    record = json.loads((tmp_path / "out" / "train_config.json").read_text())["quantization"]
    assert record["method"] == "bitsandbytes-4bit" and record["quant_type"] == "nf4"
    assert record["double_quant"] is True and record["compute_dtype"] == "float32"
    generator = HFGenerator(
        HFModelConfig(model=tiny_model, adapter=str(tmp_path / "out"), dtype="float32", quantization="4bit"),
        progress=False,
    )
    assert generator.quantization == record
    (reply,) = generator.generate([chat("the question")[:1]], GenParams(max_new_tokens=4), keys=["q"])
    assert reply.n_new_tokens >= 1


def test_4bit_without_bitsandbytes_is_a_clear_error(tiny_model, tmp_path, monkeypatch):
    import sys

    from harmdrift.core.runtime import DeviceError

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    examples = write_examples(tmp_path / "e.jsonl", repetitive_rows(2))
    with pytest.raises(DeviceError, match="config key student.quantization: 4bit needs bitsandbytes"):
        train_adapter(examples, tiny_model, tmp_path / "out", train_cfg(quantization="4bit"), progress=False)
