"""Device, dtype, thread and 4-bit settings resolved against the machine a job runs on.

The allowed values of ``device``, ``dtype`` and ``quantization`` live in config/schema.yaml;
what is checked here is what only the machine can tell (is there a GPU?).
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class DeviceError(ValueError, RuntimeError):
    """A device setting this machine cannot honour; the message names the config key to change.

    It is a ValueError because a config value has to change, and a RuntimeError because whether
    it fails depends on the machine the job landed on (like ``io.UnsupportedOperation``, which
    is both an OSError and a ValueError), so callers written for either keep catching it.
    """


def set_threads(threads: int | None) -> None:
    """Let torch use the job's CPU threads (Snakemake's ``threads``); None leaves its default."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def pick_device(device: str, key: str = "device") -> str:
    """Resolve a configured device: auto becomes cuda when torch sees a GPU, else cpu.

    Args:
        device: auto, cpu or cuda.
        key: the config key it came from, named in the error.

    Raises:
        DeviceError: cuda was asked for on a machine without a CUDA GPU.
    """
    import torch

    available = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if available else "cpu"
    if device == "cuda" and not available:
        raise DeviceError(f"config key {key}: cuda was asked for, but torch sees no CUDA GPU on this machine")
    return device


def check_4bit(quantization: str, device: str, key: str = "quantization") -> None:
    """4-bit loading runs on bitsandbytes' CUDA kernels only.

    ``device`` may be the configured value (then auto passes) or the one :func:`pick_device`
    resolved at load time. Config validation asks :func:`check_4bit_support`, which also
    resolves auto and looks for bitsandbytes on the machine that validates.

    Raises:
        DeviceError: naming ``key`` when 4bit meets a device that is not a GPU.
    """
    if quantization == "4bit" and device not in ("cuda", "auto"):
        raise DeviceError(
            f"config key {key}: 4bit needs a CUDA GPU (bitsandbytes NF4 kernels), but the device is "
            f"{device}; set it to none to run on CPU"
        )


def check_4bit_support(quantization: str, device: str, key: str = "quantization") -> None:
    """What :func:`check_4bit` leaves to load time, asked of this machine before any job starts.

    4bit needs a CUDA GPU for the device the job would use (auto resolved as
    :func:`pick_device` does), since NF4 weights are placed whole on GPU 0, and bitsandbytes
    importable with its CUDA library loaded. torch and bitsandbytes are imported only when 4bit
    is asked for.

    Raises:
        DeviceError: naming ``key``, with what to change.
    """
    if quantization != "4bit":
        return
    check_4bit(quantization, device, key)
    import torch

    if not torch.cuda.is_available():
        asked = "device auto resolves to cpu" if device == "auto" else "device cuda was asked for"
        raise DeviceError(
            f"config key {key}: 4bit needs a CUDA GPU (bitsandbytes NF4 kernels), but {asked} and "
            "torch sees no CUDA GPU on this machine; set it to none to run on CPU"
        )
    try:
        import bitsandbytes
    except Exception as err:  # ImportError, or a native library that fails while loading
        raise DeviceError(
            f"config key {key}: 4bit needs bitsandbytes, which cannot be imported here "
            f"({type(err).__name__}: {err}); install it (pip install -e '.[gpu]') or set it to none"
        ) from None
    # bitsandbytes falls back to a stand-in library when its CUDA one does not load (a CUDA
    # version it was not built for); 4-bit loading then fails at the first weight.
    library = getattr(getattr(bitsandbytes, "cextension", None), "lib", None)
    if getattr(library, "compiled_with_cuda", True) is False:
        raise DeviceError(
            f"config key {key}: 4bit needs bitsandbytes' CUDA kernels, but its CUDA library did not "
            "load on this machine (python -m bitsandbytes says why); reinstall bitsandbytes for "
            "this CUDA version, or set it to none"
        )


def pick_dtype(dtype: str, device: str, *, allow_fp16: bool = True):
    """Resolve ``dtype: auto``: bf16 on GPUs that have it, fp32 on every CPU.

    On a CPU, ``auto`` never picks bf16: CPUs differ (some have fast bf16, AVX-512-BF16 or
    AMX; others only emulate it), and a choice made by timing the machine gave different
    numbers for the same config on different machines. bf16 on a CPU is an explicit opt-in
    (``dtype: bfloat16``), and the dtype used is recorded in every output's provenance.
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
    return torch.float32


def nf4_quantization(compute_dtype):
    """QLoRA's 4-bit loading: NF4 weights with double quantisation (bitsandbytes, GPU only)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def quantized_load_kwargs(quantization: str, compute_dtype) -> dict:
    """What ``from_pretrained`` needs on top of dtype for this quantization, for generation and
    training alike: nothing for none; for 4bit, NF4 weights placed whole on the first GPU
    (bitsandbytes cannot move a quantised model afterwards)."""
    if quantization != "4bit":
        return {}
    return {"quantization_config": nf4_quantization(compute_dtype), "device_map": {"": 0}}
