"""Loading the student for training and attaching (or continuing) its LoRA adapter."""

from __future__ import annotations

import logging

from harmdrift.core.runtime import check_4bit_support, pick_dtype, quantized_load_kwargs
from harmdrift.train.config import TrainConfig

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Model


def resolve_train_dtype(dtype: str, device: str):
    """Resolve ``dtype``: auto picks bf16 on GPUs that support it and on CPUs where it is faster.

    fp16 is never picked: training in it needs loss scaling and still overflows on some models.
    """

    return pick_dtype(dtype, device, allow_fp16=False)


def check_train_quantization(cfg: TrainConfig, device: str) -> None:
    """Refuse 4-bit training where ``device`` cannot run it, naming ``student.quantization``.

    Training takes its quantization from the student section (QLoRA = student.quantization: 4bit).
    """
    check_4bit_support(cfg.quantization, device, key="student.quantization")


def load_base_model(base_model: str, cfg: TrainConfig, dtype, device: str, revision: str | None = None):
    """Load the frozen base model, 4-bit quantised for QLoRA when configured.

    QLoRA's NF4 weights compute in the resolved training dtype (float32 on CPUs, bf16 on GPUs
    that have it), as generation does, so an adapter is evaluated on the arithmetic it was
    trained with.
    """
    from transformers import AutoModelForCausalLM

    kwargs = quantized_load_kwargs(cfg.quantization, dtype, device)
    model = AutoModelForCausalLM.from_pretrained(base_model, revision=revision, dtype=dtype, **kwargs)
    model.config.use_cache = False  # a KV cache is useless in training and costs memory
    if cfg.quantization == "4bit":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    return model


def attach_adapter(model, cfg: TrainConfig, init_adapter: str | None = None):
    """Wrap the base model with a trainable LoRA adapter: a fresh one, or ``init_adapter``'s."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if init_adapter:
        model = PeftModel.from_pretrained(model, init_adapter, is_trainable=True)
        loaded = model.peft_config["default"]
        if (loaded.r, loaded.lora_alpha) != (cfg.lora_r, cfg.lora_alpha):
            logger.warning(
                "continuing adapter %s with its own r=%s alpha=%s (training.lora_r/lora_alpha are not used)",
                init_adapter,
                loaded.r,
                loaded.lora_alpha,
            )
        return model
    targets = cfg.target_modules if isinstance(cfg.target_modules, str) else list(cfg.target_modules)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def _contiguous_input(module, args):
    return (args[0].contiguous(), *args[1:])


def tune_for_speed(model, cfg: TrainConfig, dtype) -> None:
    """Two tweaks that leave the maths alone and take about a quarter off a CPU training step.

    - Under bf16 autocast, PEFT's cast of each LoRA layer's input to the adapter's fp32 dtype
      only makes autocast cast it straight back: two full copies per layer, for nothing. (So a
      bf16 model tuned here must run under autocast, as the Trainer does when bf16 is on.)
    - ``logits_to_keep`` hands the output layer a strided slice of the hidden states; torch's
      linear then expands the whole vocabulary matrix once per sequence (a batched matmul)
      instead of one plain matmul. A contiguous copy of the slice is tiny by comparison.
    """
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer

    if dtype == torch.bfloat16 and cfg.quantization == "none":
        for module in model.modules():
            if isinstance(module, BaseTunerLayer):
                module.cast_input_dtype_enabled = False
    head = model.get_output_embeddings()
    if head is not None:
        head.register_forward_pre_hook(_contiguous_input)


def count_params(model) -> tuple[int, int]:
    """The model's trainable and total parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def load_tokenizer(base_model: str, revision: str | None):
    """The student's tokenizer, padding with EOS when it has no pad token.

    Raises:
        ValueError: when the tokenizer has no chat template (chat fine-tuning needs one).
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model, revision=revision)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise ValueError(f"{base_model}: the tokenizer has no chat template; chat fine-tuning needs one")
    return tokenizer


def prepare_model(base_model: str, cfg: TrainConfig, dtype, device: str, revision, init_adapter):
    """Base model plus a trainable adapter, tuned for speed, with its parameter counts logged."""
    from transformers import set_seed

    set_seed(cfg.seed)  # the fresh LoRA matrices are drawn from this seed
    model = attach_adapter(load_base_model(base_model, cfg, dtype, device, revision), cfg, init_adapter)
    tune_for_speed(model, cfg, dtype)
    trainable, total = count_params(model)
    logger.info(
        "model on %s as %s: %d trainable of %d parameters",
        device,
        str(dtype).replace("torch.", ""),
        trainable,
        total,
    )
    return model
