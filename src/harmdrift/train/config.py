"""LoRA / QLoRA training settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# The dtypes a student may train in. student.dtype also allows float16, which is fine for
# generation; training in it needs loss scaling and still overflows on some models.
TRAIN_DTYPES = ("auto", "bfloat16", "float32")


def _is_number(value: object) -> bool:
    # bool is an int subclass, but `true` as a weight is a typo, not a number.
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainConfig:
    """The ``training`` section of the config: LoRA shape, optimiser, batching, precision.

    ``dtype`` and ``quantization`` come from the ``student`` section; ``save_steps`` is not
    configurable (tests shorten it).
    """

    lora_r: int = 16
    lora_alpha: float = 32
    lora_dropout: float = 0.05  # on CPU, drawing the dropout masks takes about a fifth of a step
    target_modules: str | tuple[str, ...] = "all-linear"
    learning_rate: float = 2e-4
    epochs: float = 3.0
    batch_size: int = 8
    grad_accum: int = 2
    warmup_ratio: float = 0.03
    scheduler: str = "cosine"
    max_length: int = 1024
    group_by_length: bool = True
    gradient_checkpointing: bool = False
    dtype: str = "auto"
    quantization: str = "none"
    seed: int = 0
    logging_steps: int = 5
    max_steps: int = -1  # > 0 caps the optimiser steps (tests, smoke runs); -1 trains all epochs
    save_steps: int = 200  # checkpoint interval, so a killed job resumes instead of starting over

    def __post_init__(self) -> None:
        # Ranges, types and choices of the training keys live in config/schema.yaml. What is left
        # is the one rule that joins two sections: training uses the student's dtype.
        if self.dtype not in TRAIN_DTYPES:
            raise ValueError(
                f"config key student.dtype: the student is trained in it, so it must be one of "
                f"{list(TRAIN_DTYPES)}, got {self.dtype!r}"
            )
        if not isinstance(self.target_modules, str):
            # A tuple keeps the frozen config hashable and comparable whatever YAML gave us.
            object.__setattr__(self, "target_modules", tuple(self.target_modules))

    def as_dict(self) -> dict:
        out = asdict(self)
        if isinstance(self.target_modules, tuple):
            out["target_modules"] = list(self.target_modules)
        return out
