"""LoRA / QLoRA training settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# The dtypes a student may train in. student.dtype also allows float16, which is fine for
# generation; training in it needs loss scaling and still overflows on some models.
TRAIN_DTYPES = ("auto", "bfloat16", "float32")


@dataclass(frozen=True)
class TrainConfig:
    """The ``training`` section of the config: LoRA shape, optimiser, batching, precision.

    Every config key's meaning, range and default is config/schema.yaml's: build it with
    ``harmdrift.config.train_config`` from the schema-filled ``training`` section. ``dtype`` and
    ``quantization`` come from the ``student`` section; ``save_steps`` is no config key (tests
    shorten it).
    """

    lora_r: int
    lora_alpha: float
    lora_dropout: float
    target_modules: str | tuple[str, ...]
    learning_rate: float
    epochs: float
    batch_size: int
    grad_accum: int
    warmup_ratio: float
    scheduler: str
    max_length: int
    group_by_length: bool
    gradient_checkpointing: bool
    dtype: str
    quantization: str
    seed: int
    logging_steps: int
    max_steps: int  # > 0 caps the optimiser steps (tests, smoke runs); -1 trains all epochs
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
