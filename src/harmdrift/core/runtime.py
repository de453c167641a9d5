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


def check_4bit_support(quantization: str, device: str, key: str = "quantization") -> None:
    """Can this machine load 4-bit weights on ``device``? Asked before any job starts (config
    validation, for the configured device) and again where a model loads (for the device the
    job resolved), so a job that lands on another machine still fails with the key named.

    bitsandbytes 0.50.2 has NF4 kernels for CPUs (its default and CPU back-ends) and for CUDA
    GPUs (its CUDA library); ``auto`` is resolved as :func:`pick_device` does. ``cuda`` asked
    for on a machine without a GPU (a cluster's login node validating a run whose jobs go to
    GPU nodes) is left to the job's machine, where :func:`pick_device` refuses first if it has
    no GPU either. torch and bitsandbytes are imported only when 4bit is asked for.

    Raises:
        DeviceError: naming ``key``, with what to change.
    """
    if quantization != "4bit":
        return
    import torch

    resolved = device if device == "cuda" else pick_device(device)
    try:
        bitsandbytes = import_bitsandbytes()
    except Exception as err:  # ImportError, or a native library that fails while loading
        raise DeviceError(
            f"config key {key}: 4bit needs bitsandbytes, which cannot be imported here "
            f"({type(err).__name__}: {err}); install it (pip install bitsandbytes==0.50.2) or set "
            "it to none"
        ) from None
    if resolved not in bitsandbytes.supported_torch_devices:
        raise DeviceError(
            f"config key {key}: bitsandbytes {bitsandbytes.__version__} has no 4-bit kernels for "
            f"device {resolved}; set it to none"
        )
    if resolved != "cuda" or not torch.cuda.is_available():
        return
    # bitsandbytes falls back to a stand-in library when its CUDA one does not load (a CUDA
    # version it was not built for); 4-bit loading then fails at the first weight.
    library = getattr(getattr(bitsandbytes, "cextension", None), "lib", None)
    if getattr(library, "compiled_with_cuda", True) is False:
        raise DeviceError(
            f"config key {key}: 4bit on cuda needs bitsandbytes' CUDA kernels, but its CUDA library "
            "did not load on this machine (python -m bitsandbytes says why); reinstall bitsandbytes "
            "for this CUDA version, run on the CPU (device: cpu), or set it to none"
        )


def _not_the_hub_kernel_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Failed to load CPU gemm_4bit_forward from kernels-community")


def import_bitsandbytes():
    """bitsandbytes, imported without one warning it logs on AVX-512-BF16 CPUs: that its optional
    ``kernels`` package (which downloads a kernel from the Hugging Face hub) is missing. The
    pipeline never installs it, on purpose (runs are offline); bitsandbytes then uses its own
    kernels, which is what every other CPU runs. Its other messages are kept."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_not_the_hub_kernel_notice)
    import bitsandbytes

    return bitsandbytes


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
    """QLoRA's 4-bit loading: NF4 weights with double quantisation, computing in
    ``compute_dtype`` (the resolved dtype: float32 on CPUs, bf16 on GPUs that have it)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def quantized_load_kwargs(quantization: str, compute_dtype, device: str) -> dict:
    """What ``from_pretrained`` needs on top of dtype for this quantization, for generation and
    training alike: nothing for none; for 4bit, NF4 weights placed whole on ``device`` (the CPU,
    or the first GPU: bitsandbytes cannot move a quantised model afterwards)."""
    if quantization != "4bit":
        return {}
    placement = {"": 0} if device == "cuda" else {"": device}
    return {"quantization_config": nf4_quantization(compute_dtype), "device_map": placement}


def quantization_record(quantization: str, compute_dtype) -> dict:
    """How the weights were quantised, for provenance (train_config.json, generation records):
    ``{"method": "none"}``, or bitsandbytes' 4-bit settings and its version."""
    if quantization != "4bit":
        return {"method": "none"}
    bitsandbytes = import_bitsandbytes()
    settings = nf4_quantization(compute_dtype)
    return {
        "method": "bitsandbytes-4bit",
        "quant_type": settings.bnb_4bit_quant_type,
        "double_quant": settings.bnb_4bit_use_double_quant,
        "compute_dtype": str(compute_dtype).replace("torch.", ""),
        "bitsandbytes": bitsandbytes.__version__,
    }
