"""Model references: embedded names, local folders, hub ids, provenance."""

from __future__ import annotations

import sys

import pytest

from harmdrift.lm.convert import find_embedded_file
from harmdrift.lm.refs import ModelSpec, model_provenance, parse_model_spec, resolve_load_path


def test_embedded_spec_and_its_file_is_installed():
    spec = parse_model_spec("embedded:smollm2-135m-instruct")
    assert spec == ModelSpec("embedded", "smollm2-135m-instruct")
    assert resolve_load_path(spec, "results/default/models") == "results/default/models/smollm2-135m-instruct"
    assert find_embedded_file("smollm2-135m-instruct").stat().st_size > 50_000_000


def test_hub_id():
    assert parse_model_spec("meta-llama/Meta-Llama-3-8B-Instruct").kind == "hub"
    assert parse_model_spec("gpt2").kind == "hub"


def test_local_folder(tiny_model):
    spec = parse_model_spec(tiny_model)
    assert spec.kind == "local"
    prov = model_provenance(spec, tiny_model)
    assert prov["kind"] == "local" and len(prov["weights_sha256"]) == 64


def test_missing_folder_names_the_key():
    with pytest.raises(ValueError, match=r"'student.model'.*does not exist"):
        parse_model_spec("./models/missing", key="student.model")


def test_folder_without_config(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        parse_model_spec(str(tmp_path))


def test_garbage_is_rejected():
    with pytest.raises(ValueError, match="neither"):
        parse_model_spec("not a model!")
    with pytest.raises(ValueError, match="unknown embedded"):
        parse_model_spec("embedded:nope")


def test_hub_provenance_names_revision():
    assert model_provenance(ModelSpec("hub", "org/m"), "org/m", "abc123")["revision"] == "abc123"


def test_nf4_quantization_is_qlora_style():
    import torch

    from harmdrift.core.runtime import nf4_quantization

    cfg = nf4_quantization(torch.bfloat16)
    assert cfg.load_in_4bit and cfg.bnb_4bit_quant_type == "nf4" and cfg.bnb_4bit_use_double_quant
    assert cfg.bnb_4bit_compute_dtype == torch.bfloat16


def test_quantized_load_kwargs_are_built_in_one_place():
    import torch

    from harmdrift.core.runtime import quantized_load_kwargs

    assert quantized_load_kwargs("none", torch.float32, "cpu") == {}
    on_gpu = quantized_load_kwargs("4bit", torch.bfloat16, "cuda")
    assert on_gpu["device_map"] == {"": 0}  # whole on the first GPU: NF4 weights cannot move later
    assert on_gpu["quantization_config"].bnb_4bit_quant_type == "nf4"
    on_cpu = quantized_load_kwargs("4bit", torch.float32, "cpu")
    assert on_cpu["device_map"] == {"": "cpu"}
    assert on_cpu["quantization_config"].bnb_4bit_compute_dtype == torch.float32


def test_quantization_record_says_how_the_weights_were_quantised():
    import bitsandbytes
    import torch

    from harmdrift.core.runtime import quantization_record

    assert quantization_record("none", torch.float32) == {"method": "none"}
    assert quantization_record("4bit", torch.float32) == {
        "method": "bitsandbytes-4bit",
        "quant_type": "nf4",
        "double_quant": True,
        "compute_dtype": "float32",
        "bitsandbytes": bitsandbytes.__version__,
    }


def test_4bit_check_passes_on_the_cpu_and_names_the_key_elsewhere(monkeypatch):
    from harmdrift.core.runtime import DeviceError, check_4bit_support

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    check_4bit_support("4bit", "cpu", "student.quantization")  # bitsandbytes' CPU kernels
    check_4bit_support("4bit", "auto", "student.quantization")  # auto resolves to cpu here
    check_4bit_support("none", "cuda", "student.quantization")  # nothing to check without 4bit
    check_4bit_support("4bit", "cuda", "student.quantization")  # left to the GPU node's job
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    with pytest.raises(DeviceError, match=r"config key teacher\.quantization: 4bit needs bitsandbytes"):
        check_4bit_support("4bit", "cpu", "teacher.quantization")
    # Config code catches ValueError, load-time callers RuntimeError: both see it.
    assert issubclass(DeviceError, ValueError) and issubclass(DeviceError, RuntimeError)


def test_cuda_without_a_gpu_names_the_key():
    import torch

    from harmdrift.core.runtime import DeviceError, pick_device
    from harmdrift.scorers.base import resolve_device

    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        pytest.skip("checks the error raised without a GPU")
    with pytest.raises(DeviceError, match=r"config key student\.device: cuda was asked for"):
        pick_device("cuda", key="student.device")
    with pytest.raises(ValueError, match=r"config key audit\.scorer\.device"):
        resolve_device("cuda")


def test_conversion_parses_each_gguf_file_once_and_restores_gguf(monkeypatch):
    """Inside the conversion, a second reader of the same file and a second name table for
    the same model are the first ones; outside it, gguf is as it was."""
    import gguf

    from harmdrift.lm.convert import gguf_parsed_once

    built = []

    class CountingReader:
        def __init__(self, path):
            built.append(path)

    maps = []
    monkeypatch.setattr(gguf, "GGUFReader", CountingReader)
    monkeypatch.setattr(gguf, "get_tensor_name_map", lambda arch, n: maps.append((arch, n)) or object())
    with gguf_parsed_once():
        first, again, other = gguf.GGUFReader("a.gguf"), gguf.GGUFReader("a.gguf"), gguf.GGUFReader("b.gguf")
        table = gguf.get_tensor_name_map("llama", 30)
        assert gguf.get_tensor_name_map("llama", 30) is table
        gguf.get_tensor_name_map("llama", 2)
    assert first is again and other is not first
    assert built == ["a.gguf", "b.gguf"] and maps == [("llama", 30), ("llama", 2)]
    assert gguf.GGUFReader is CountingReader
    gguf.GGUFReader("a.gguf")
    assert built == ["a.gguf", "b.gguf", "a.gguf"]
