"""Training rows and settings shared by the training tests of both tiers (tests/unit/train
and tests/workflow/train); the ``tokenizer`` fixture is in tests/conftest.py."""

from __future__ import annotations

import json
from dataclasses import replace

from conftest import validated_default_config
from harmdrift.config import train_config
from harmdrift.train.config import TrainConfig

REPLY = "yes so it is the same Conclusion: YES"
FAST = {"lora_r": 4, "lora_alpha": 8, "dtype": "float32", "logging_steps": 1, "warmup_ratio": 0.0}


def train_cfg(**overrides) -> TrainConfig:
    """The default profile's training settings (config/config.yaml with the schema's defaults
    filled), with ``overrides``: TrainConfig takes no defaults of its own."""
    config = validated_default_config()
    return replace(train_config(config["training"], config["student"]), **overrides)


def chat(question: str, reply: str = REPLY) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]


def write_examples(path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def repetitive_rows(n: int = 8) -> list[dict]:
    """Examples of a few lengths that all share one reply: easy to learn in a few steps."""
    questions = ["the question", "is the law a fact", "groups are treated differently because law"]
    return [{"id": f"q{i}", "messages": chat(questions[i % 3])} for i in range(n)]
