"""Rule functions of training (one per Snakemake rule, named after it)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from harmdrift.config import train_config
from harmdrift.core.io import iter_jsonl
from harmdrift.core.runtime import set_threads
from harmdrift.train import run
from harmdrift.train.run import carry_over_adapter

logger = logging.getLogger(__name__)


def train_adapter(
    *,
    examples: str | os.PathLike,
    adapter: str | os.PathLike,
    training: dict,
    student: dict,
    load_path: str,
    init_adapter: str | None = None,
    threads: int | None = None,
) -> dict:
    """Rule train_adapter: LoRA fine-tuning of the student on one training set.

    Args:
        examples: the training examples (JSONL with ``messages`` and ``weight``).
        adapter: the adapter weights file the rule declares; its folder receives every output.
        training: the ``training`` config section.
        student: the ``student`` section (its dtype and quantization apply to training too,
            so QLoRA is simply ``student.quantization: 4bit``).
        load_path: what ``from_pretrained`` loads for the student.
        init_adapter: an adapter to continue from (Stage III).
        threads: CPU threads torch may use.
    """
    set_threads(threads)
    out_dir = Path(adapter).parent
    if init_adapter and not any(True for _ in iter_jsonl(examples)):
        return carry_over_adapter(init_adapter, out_dir, examples)
    summary = run.train_adapter(
        examples,
        load_path,
        out_dir,
        train_config(training, student),
        init_adapter=init_adapter,
        revision=student["revision"],
    )
    logger.info("training summary: %s", summary)
    return summary
