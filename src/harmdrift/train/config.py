"""LoRA / QLoRA training settings."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

TRAIN_DTYPES = ("auto", "bfloat16", "float32")
TRAIN_QUANTIZATIONS = ("none", "4bit")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")


def _is_number(value: object) -> bool:
    # bool is an int subclass, but `true` in a config is a typo, not a number.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainConfig:
    """The ``training`` section of the config: LoRA shape, optimiser, batching, precision."""

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
        self._check_ints()
        self._check_floats()
        self._check_choices()
        self._check_target_modules()

    def _check_ints(self) -> None:
        minimum = {
            "lora_r": 1,
            "batch_size": 1,
            "grad_accum": 1,
            "max_length": 2,
            "logging_steps": 1,
            "save_steps": 1,
            "seed": 0,
        }
        for name, low in minimum.items():
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ValueError(f"training.{name} must be an integer >= {low}, got {value!r}")
        if not _is_int(self.max_steps) or (self.max_steps < 1 and self.max_steps != -1):
            raise ValueError(
                f"training.max_steps must be -1 (no cap) or an integer >= 1, got {self.max_steps!r}"
            )

    def _check_floats(self) -> None:
        for name in ("lora_alpha", "learning_rate", "epochs"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"training.{name} must be a number > 0, got {value!r}")
        for name in ("lora_dropout", "warmup_ratio"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value < 1:
                raise ValueError(f"training.{name} must be a number in [0, 1), got {value!r}")

    def _check_choices(self) -> None:
        for name, choices in (
            ("scheduler", SCHEDULERS),
            ("dtype", TRAIN_DTYPES),
            ("quantization", TRAIN_QUANTIZATIONS),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"training.{name} must be one of {choices}, got {getattr(self, name)!r}")
        for name in ("group_by_length", "gradient_checkpointing"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"training.{name} must be true or false, got {getattr(self, name)!r}")

    def _check_target_modules(self) -> None:
        modules = self.target_modules
        if isinstance(modules, str):
            if not modules:
                raise ValueError("training.target_modules must not be empty")
            return
        if (
            not isinstance(modules, list | tuple)
            or not modules
            or not all(isinstance(m, str) and m for m in modules)
        ):
            raise ValueError(
                "training.target_modules must be 'all-linear' or a non-empty list of module names, "
                f"got {modules!r}"
            )
        # A tuple keeps the frozen config hashable and comparable whatever YAML gave us.
        object.__setattr__(self, "target_modules", tuple(modules))

    def as_dict(self) -> dict:
        out = asdict(self)
        if isinstance(self.target_modules, tuple):
            out["target_modules"] = list(self.target_modules)
        return out
