"""Rule functions of generation (one per Snakemake rule, named after it)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from harmdrift.backends.hf_backend import HFChatBackend
from harmdrift.config import gen_params, hf_model_config
from harmdrift.core.io import files_sha256
from harmdrift.core.runtime import set_threads
from harmdrift.core.store import KeyValueStore
from harmdrift.generate.answers import AnswerConfig, ReplyReuse
from harmdrift.generate.answers import generate_answers as answer_split
from harmdrift.lm.forced import ForcedChoice
from harmdrift.lm.refs import model_provenance, parse_model_spec

logger = logging.getLogger(__name__)

REPLIES_FILE = "replies.sqlite"
_COMMIT = re.compile(r"[0-9a-f]{40}")


def weights_identity(provenance: dict, adapter: str | None) -> dict | None:
    """The weights by content, for reusing replies; None when they have no fixed identity
    (a hub model on a branch such as main, which can move between runs)."""
    if provenance.get("kind") == "hub" and not _COMMIT.fullmatch(str(provenance.get("revision"))):
        return None
    import torch
    import transformers

    return {
        "base": {k: v for k, v in provenance.items() if k != "adapter"},
        # The adapter's config and weights files, not its logs or loss curve.
        "adapter_sha256": files_sha256(sorted(Path(adapter).glob("adapter_*"))) if adapter else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def reply_reuse(generation: dict, cache_dir: str | None, provenance: dict, adapter: str | None):
    """Where this job may find (and leaves) the replies of an identical job, or None."""
    weights = weights_identity(provenance, adapter)
    if not generation.get("cache", True) or cache_dir is None or weights is None:
        return None
    return ReplyReuse(KeyValueStore(Path(cache_dir) / REPLIES_FILE, "replies"), weights)


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
    cache_dir: str | None = None,
    policy: str | None = None,
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
        cache_dir: where an identical job's replies are looked up and this job's are kept
            (with ``generation.cache``); None decodes every time.
        policy: the explanation policy's prompt file (a ``<model>+policy`` row), or None.
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
        checkpoint_every=generation["checkpoint_every"],
        policy=Path(policy).read_text(encoding="utf-8").strip() if policy else None,
    )
    provenance = model_provenance(spec, load_path, student["revision"])
    if adapter:
        provenance = {**provenance, "adapter": adapter}
    logger.info("model %s: %s", model, provenance)
    logger.info("decoding: %s, batch_size=%d", cfg.params, model_cfg.batch_size)
    reuse = reply_reuse(generation, cache_dir, provenance, adapter)
    backend = HFChatBackend(model_cfg, name=student["model"], weights=lambda: provenance)
    return answer_split(
        split_items, template, answers, cfg=cfg, backend=backend, provenance=provenance, reuse=reuse
    )
