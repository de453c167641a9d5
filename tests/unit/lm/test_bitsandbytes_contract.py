"""What the engine takes from bitsandbytes beyond its public API (see
``harmdrift.lm.engine.keep_compute_dtype``): one test per reliance, so an upgrade that breaks
one fails here, with the reason, rather than as numbers that quietly differ between CPUs."""

from __future__ import annotations

import pytest
import torch

bnb = pytest.importorskip("bitsandbytes")


def nf4_layer(seed: int = 0):
    """A 4-bit linear layer as transformers builds one for ``quantization: 4bit``."""
    torch.manual_seed(seed)
    weight = torch.randn(64, 128)
    layer = bnb.nn.Linear4bit(128, 64, bias=False, compute_dtype=torch.float32, quant_type="nf4")
    layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4", compress_statistics=True)
    return layer.to("cpu").eval()


def fp32_reference(layer, x):
    weight = bnb.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state)
    return torch.nn.functional.linear(x, weight.to(torch.float32))


def test_the_module_flag_keeps_inference_in_the_compute_dtype():
    from harmdrift.lm.engine import keep_compute_dtype

    layer = nf4_layer()
    model = torch.nn.Sequential(layer)
    assert keep_compute_dtype(model, torch.float32) == 1
    assert layer.support_avx512bf16_for_cpu is False
    x = torch.randn(3, 5, 128)
    with torch.no_grad():
        out = layer(x)
    assert out.dtype == torch.float32
    assert not getattr(layer.weight.quant_state, "packing_format_for_cpu", False)
    torch.testing.assert_close(out, fp32_reference(layer, x), rtol=1e-5, atol=1e-5)


def test_a_bf16_compute_dtype_is_left_alone():
    from harmdrift.lm.engine import keep_compute_dtype

    layer = nf4_layer()
    before = layer.support_avx512bf16_for_cpu
    assert keep_compute_dtype(torch.nn.Sequential(layer), torch.bfloat16) == 0
    assert layer.support_avx512bf16_for_cpu == before


@pytest.mark.skipif(not bnb.functional.has_avx512bf16(), reason="repacked on AVX-512-BF16 CPUs only")
def test_without_the_flag_inference_is_repacked_and_computes_in_bf16():
    """Why the flag is set: on such CPUs the default path leaves fp32 (found on an AMD EPYC)."""
    layer = nf4_layer()
    x = torch.randn(3, 5, 128)
    reference = fp32_reference(layer, x)  # before the first forward repacks the weights
    with torch.no_grad():
        out = layer(x)
    assert layer.weight.quant_state.packing_format_for_cpu
    assert not torch.allclose(out, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, reference, rtol=0.05, atol=0.1)  # the same layer, in bf16
