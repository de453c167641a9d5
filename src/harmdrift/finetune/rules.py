"""Rule functions of the fine-tune audit (one per Snakemake rule, named after it)."""

from __future__ import annotations

import logging

from harmdrift.audit.rules import summary_meta
from harmdrift.config import chat_backend, gen_params
from harmdrift.core.runtime import set_threads
from harmdrift.finetune.answers import APIAnswerer, export_chat_set, write_prompt_set
from harmdrift.finetune.summary import write_finetune_summary
from harmdrift.generate.answers import AnswerConfig
from harmdrift.generate.answers import generate_answers as answer_split
from harmdrift.generate.rules import generate_answers
from harmdrift.report.audit_figures import audit_figures

logger = logging.getLogger(__name__)


def write_finetune_prompts(*, source: str, prompts: str, entry: dict, name: str) -> dict:
    """Rule write_finetune_prompts: one prompt set as every fine-tune job reads it.

    Args:
        source: this run's audit split or open-domain sample, or the user's file (folder for BOLD).
        prompts: the JSONL to write.
        entry: the prompt set's config (``prompt_sets.<name>``); name: its name.
    """
    return write_prompt_set(source, prompts, entry, name=name)


def finetune_answers(
    *, prompts: str, template: str, answers: str, model: str, side: dict, framing: str, generation: dict,
    cache_dir: str | None, threads: int | None = None,
) -> dict:  # fmt: skip
    """Rule finetune_answers: one side of a fine-tune pair (its base or itself) answers a prompt set.

    Args:
        prompts: the prompt set; template: its prompt file; answers: the JSONL to write.
        model: the name the records carry (``<fine-tune>`` or ``<fine-tune>:base``).
        side: how this side is reached: ``{"backend": "hf", "student": <the student section with
            this side's model>, "load_path", "adapter"}`` or ``{"backend": "openai", "section":
            <a chat back-end section>}``.
        framing: binary (the benchmark prompt set) or open.
        generation: the ``generation`` section (both sides decode alike).
        cache_dir: where replies are reused (local) or cached (API).
    """
    if side["backend"] == "hf":
        return generate_answers(
            split_items=prompts, template=template, answers=answers, model=model, framing=framing,
            student=side["student"], generation=generation, load_path=side["load_path"],
            adapter=side["adapter"], threads=threads, cache_dir=cache_dir,
        )  # fmt: skip
    set_threads(threads)
    backend = chat_backend(side["section"], cache_dir)
    cfg = AnswerConfig(
        framing=framing, model_name=model, params=gen_params(generation, framing),
        stop_at_answer=generation["stop_at_answer"], forced=None,
    )  # fmt: skip
    provenance = backend.describe()
    logger.info("model %s: %s; decoding %s", model, provenance, cfg.params)
    return answer_split(
        prompts, template, answers, cfg=cfg, backend=APIAnswerer(backend), provenance=provenance
    )


def finetune_summary(
    *, pairs: str, judgments: str, csv: str, check: str, summary: str, summary_md: str, deltas_png: str,
    deltas_pdf: str, counts_png: str, counts_pdf: str, model: str, base: str, prompt_set: str, audit: dict,
    bootstrap: dict,
) -> dict:  # fmt: skip
    """Rule finetune_summary: a fine-tune's audit summary on one prompt set, and its figures.

    Args:
        pairs, judgments, csv, check: the pairing, the verdicts, the audit table, the judge's check.
        summary, summary_md, deltas_png, deltas_pdf, counts_png, counts_pdf: the outputs.
        model: the fine-tune; base: what it is compared against; prompt_set: the set's name.
        audit: the audit keys the summary reports (as rule audit_summary's) and ``worst_pairs``.
        bootstrap: ``evaluation.bootstrap``.
    """
    result = write_finetune_summary(
        pairs, judgments, check, {"summary": summary, "summary_md": summary_md}, model=model, base=base,
        prompt_set=prompt_set, bootstrap=bootstrap, worst_k=audit["worst_pairs"], meta=summary_meta(audit),
    )  # fmt: skip
    audit_figures(csv, summary, deltas_png, deltas_pdf, counts_png, counts_pdf)
    return result


def export_repair_chat_set(*, examples: str, chat: str, summary: str) -> dict:
    """Rule export_repair_chat_set: an API fine-tune's repair set as chat-format JSONL."""
    return export_chat_set(examples, chat, summary)
