"""Device, dtype, thread and 4-bit settings resolved against the machine a job runs on."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger(__name__)

DTYPES = ("auto", "bfloat16", "float16", "float32")
QUANTIZATIONS = ("none", "4bit")
DEVICES = ("auto", "cpu", "cuda")


def set_threads(threads: int | None) -> None:
    """Let torch use the job's CPU threads (Snakemake's ``threads``); None leaves its default."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for, but torch sees no CUDA GPU on this machine")
    return device


def cpu_bf16_speedup(size: int = 768, repeats: int = 5) -> float:
    """Measure how much faster a bf16 matmul runs than fp32 on this CPU (ratio > 1 = faster)."""
    import torch

    a32, b32 = torch.randn(size, size), torch.randn(size, size)
    a16, b16 = a32.bfloat16(), b32.bfloat16()

    def best(a, b) -> float:
        a @ b  # warm-up: the first call pays for kernel selection
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
        return min(times)

    return best(a32, b32) / max(best(a16, b16), 1e-9)


def pick_dtype(dtype: str, device: str, *, allow_fp16: bool = True):
    """Resolve ``dtype: auto``: bf16 on GPUs that have it, and on CPUs where it measures faster.

    A GPU without bf16 falls back to fp16, or to fp32 when ``allow_fp16`` is off (training:
    fp16 needs loss scaling and still overflows on some models).
    """
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    if device == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16 if allow_fp16 else torch.float32
    ratio = cpu_bf16_speedup()
    chosen = torch.bfloat16 if ratio > 1.2 else torch.float32
    logger.info("dtype auto: bf16 matmul runs %.2fx fp32 speed on this CPU -> %s", ratio, chosen)
    return chosen


def nf4_quantization(compute_dtype):
    """QLoRA's 4-bit loading: NF4 weights with double quantisation (bitsandbytes, GPU only)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )
