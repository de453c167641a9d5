"""Rule functions of generation (one per Snakemake rule, named after it)."""

from __future__ import annotations

import logging

from harmdrift.config import gen_params, hf_model_config
from harmdrift.core.runtime import set_threads
from harmdrift.generate.answers import AnswerConfig
from harmdrift.generate.answers import generate_answers as answer_split
from harmdrift.lm.engine import HFGenerator
from harmdrift.lm.forced import ForcedChoice
from harmdrift.lm.refs import model_provenance, parse_model_spec

logger = logging.getLogger(__name__)


def generate_answers(
    *,
    split_items: str,
    template: str,
    answers: str,
    model: str,
    framing: str,
    student: dict,
    generation: dict,
    load_path: str,
    adapter: str | None = None,
    threads: int | None = None,
) -> dict:
    """Rule generate_answers: one model answers one split in one framing.

    Args:
        split_items: the split's items; template: the framing's prompt file.
        answers: the JSONL to write (one record per item).
        model: the model's name (m0, m_int, ...); framing: binary, mc or open.
        student: the ``student`` config section.
        generation: the ``generation`` config section.
        load_path: what ``from_pretrained`` takes (converted folder, local folder or hub id).
        adapter: LoRA adapter folder, or None for the base model.
        threads: CPU threads torch may use (the job's Snakemake threads).
    """
    set_threads(threads)
    spec = parse_model_spec(student["model"], key="student.model")
    model_cfg = hf_model_config(student, generation, load_path=load_path, adapter=adapter)
    cfg = AnswerConfig(
        framing=framing,
        model_name=model,
        params=gen_params(generation, framing),
        stop_at_answer=generation["stop_at_answer"],
        # Every binary answer also gets the format-free forced choice (YES vs NO after
        # "\nConclusion:"), read from the reply's KV cache at little cost.
        forced=ForcedChoice() if framing == "binary" else None,
    )
    provenance = model_provenance(spec, load_path, student["revision"])
    if adapter:
        provenance = {**provenance, "adapter": adapter}
    logger.info("model %s: %s", model, provenance)
    logger.info("decoding: %s, batch_size=%d", cfg.params, model_cfg.batch_size)
    generator = HFGenerator(model_cfg)
    return answer_split(split_items, template, answers, cfg=cfg, generator=generator, provenance=provenance)
