"""One model answers one split in one framing: prompts, generation, parsing, resumable output."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harmdrift.backends.base import Completion
from harmdrift.backends.hf_backend import HFChatBackend
from harmdrift.core.decoding import GenParams
from harmdrift.core.io import DataError, iter_jsonl, json_sha256, read_jsonl, write_jsonl
from harmdrift.core.parsing import (
    POLICY_MAX_CHARS,
    POLICY_MAX_SENTENCES,
    ParseResult,
    conclusion_written,
    mc_answer_written,
    parse_binary,
    parse_mc,
    policy_trim,
)
from harmdrift.core.prompts import build_messages, load_template
from harmdrift.core.store import KeyValueStore
from harmdrift.core.vocab import FRAMINGS
from harmdrift.lm.forced import ForcedChoice, forced_prediction

logger = logging.getLogger(__name__)

# Item fields carried into every answer record, so later stages need no join.
ITEM_FIELDS = (
    "id",
    "benchmark",
    "category",
    "condition",
    "scenario_id",
    "gold_label",
    "correct_option",
    "split",
    "reconstructed",
)
# Carried only when the item has them: a prompt set's group, HateCheck's label, the set's name.
OPTIONAL_ITEM_FIELDS = ("group", "hateful", "prompt_set")


@dataclass(frozen=True)
class AnswerConfig:
    """What a generation job needs besides the model itself."""

    framing: str
    model_name: str  # the pipeline's name for the model: m0, m_int, ...
    params: GenParams
    stop_at_answer: bool = True
    # Binary framing: after each reply, compare log p(" YES") and log p(" NO") following
    # "\nConclusion:" (an addition to DART's protocol; it does not depend on the reply's format).
    forced: ForcedChoice | None = None
    # Items decoded and checkpointed together (None: the whole job in one call). A killed
    # job resumes at its last finished chunk, and each chunk is decoded on its own whether or
    # not the job was resumed, so a resumed job writes the same bytes as an uninterrupted one
    # (rows decoded beside other companions would shift float32 logits slightly).
    checkpoint_every: int | None = None
    # DART's inference-time explanation policy: a system prompt ahead of every question, and the
    # analysis of each reply cut to its limits afterwards (core.parsing.policy_trim). None: off.
    policy: str | None = None

    def __post_init__(self) -> None:
        # The framing comes from the rule's wildcard, not from a config key the schema checks
        # (evaluation.framings has no "open"), so this is its only check.
        if self.framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, got {self.framing!r}")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1, got {self.checkpoint_every}")
        if self.forced is not None and self.framing != "binary":
            raise ValueError(
                f"the forced choice reads YES/NO and needs the binary framing, not {self.framing!r}"
            )


def stop_check(framing: str):
    """The cheap test that ends a reply once its answer is on the page (none for free text)."""
    return {"binary": conclusion_written, "mc": mc_answer_written}.get(framing)


def parse_reply(framing: str, text: str, item: dict):
    """Parse a reply in the item's framing (3-way parsing may match option text).

    Open-domain answers are free text: the judge reads them later, nothing is parsed here,
    unless the item has a gold answer (a prompt set's ``gold``: YES/NO, or an option letter
    read as the 3-way framing reads (a)-(c), returned in upper case).
    """
    if framing == "binary":
        return parse_binary(text)
    if framing == "open":
        # A prompt set's item with a gold answer is read like the benchmark's framings.
        gold = item.get("gold_label")
        if gold in ("YES", "NO"):
            return parse_binary(text)
        if isinstance(gold, str) and len(gold) == 1:
            parsed = parse_mc(text)
            return ParseResult(parsed.prediction.upper() if parsed.prediction else None, parsed.status)
        return ParseResult(None, "free_text")
    return parse_mc(text, item.get("options"))


def fingerprint(provenance: dict, decoding: dict, prompt_text: str) -> str:
    """Hash of everything that determines a record; checkpointed records must match it."""
    blob = json.dumps([provenance, decoding, prompt_text], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ReplyReuse:
    """Where a whole job's replies are kept for an identical later job.

    ``weights`` names the base model and the adapter by content (hashes, a commit), never by
    path: a repair round with nothing to repair keeps its parent's adapter as a copy, and the
    copy's job then reads the parent's replies instead of decoding them again.

    Measured on the default profile (2-core AMD EPYC, 2026-12-06): M_DART kept M_int's adapter
    (nothing to repair), so its val and test jobs (160 items) read M_int's replies in 12.7 s
    and 5.1 s instead of decoding for 76.9 s and 75.4 s: 134.5 s of 2186 s of job time. When
    the generation jobs re-run with their weights, decoding and prompts unchanged (after an
    edit to ``generation.checkpoint_every`` that still leaves each split one chunk, say), all
    13 read their replies instead of about 990 s of decoding.
    """

    store: KeyValueStore
    weights: dict


def job_key(weights: dict, decoding: dict, items: list[dict], prompt_texts: list[str]) -> str:
    """Everything a job's replies depend on: weights, decoding, and every prompt in order.

    The whole job, not each item: the batches a prompt is decoded in nudge its logits, so only
    an identical job is sure to give identical replies.
    """
    prompts = [[item["id"], text] for item, text in zip(items, prompt_texts, strict=True)]
    return json_sha256([weights, decoding, prompts])


def _stored_replies(records: list[dict]) -> dict[str, dict]:
    """What a record holds of its generation, enough to build the record again."""
    return {
        r["id"]: {
            # The reply as decoded: a policy-trimmed record keeps it beside the trimmed one.
            "text": (r.get("policy_trim") or {}).get("untrimmed", r["raw_output"]),
            "n_new_tokens": r["n_new_tokens"],
            "finish_reason": r["finish_reason"],
            "forced_scores": r.get("forced_scores"),
        }
        for r in records
    }


def _stored_completion(stored: dict, forced: ForcedChoice | None) -> Completion:
    """A reply kept by :func:`_stored_replies`, as the back-end returned it.

    The store writes JSON with sorted keys; the forced-choice scores get back the options'
    order, so a job that reads its replies writes the bytes of one that decoded them.
    """
    scores = stored["forced_scores"]
    if forced is not None and scores is not None:
        scores = {option: scores[option] for option in forced.options}
    return Completion(
        text=stored["text"],
        prompt_tokens=None,
        completion_tokens=stored["n_new_tokens"],
        finish_reason=stored["finish_reason"],
        forced_scores=scores,
    )


def _load_checkpoint(path: Path, wanted: dict[str, str], required: tuple[str, ...] = ()) -> dict[str, dict]:
    """Records from an earlier, interrupted run that still match their fingerprint.

    The forced-choice setting is part of the fingerprint, so records written without it are
    stale; ``required`` fields are checked as well, so a record lacking one is never reused.
    """
    if not path.exists():
        return {}
    kept: dict[str, dict] = {}
    stale = 0
    try:
        for _, record in iter_jsonl(path):
            matches = wanted.get(record.get("id")) == record.get("fingerprint")
            if matches and all(record.get(field) is not None for field in required):
                kept[record["id"]] = record
            else:
                stale += 1
    except DataError as err:
        # A crash can cut the last line short; what was read before it is still good.
        logger.warning("checkpoint %s ends in a damaged line (%s); keeping %d records", path, err, len(kept))
    logger.info("resuming from %s: %d records reused, %d stale ones ignored", path, len(kept), stale)
    return kept


def generate_answers(
    items_path: str | Path,
    template_path: str | Path,
    out_path: str | Path,
    *,
    cfg: AnswerConfig,
    backend: HFChatBackend,
    provenance: dict,
    reuse: ReplyReuse | None = None,
) -> dict:
    """Answer every item in ``items_path`` and write the records to ``out_path``.

    Args:
        items_path: a split file written by the write_splits rule.
        template_path: the framing's prompt template.
        out_path: the JSONL to write (atomically, in item order).
        cfg: framing, model name and decoding settings.
        backend: the student as a local back-end (loaded on first use).
        provenance: the model's provenance record, copied into every row.
        reuse: where replies of identical jobs are kept (None: always decode).

    Returns:
        Counts: items, reused from checkpoint, parse statuses, finish reasons.

    Raises:
        DataError: when the split file is empty.
    """
    items = read_jsonl(items_path)
    if not items:
        raise DataError(f"{items_path}: the split has no items; check data.split in the config")
    template = load_template(template_path)
    decoding = {
        **cfg.params.as_dict(),
        "framing": cfg.framing,
        "stop_at_answer": cfg.stop_at_answer,
        **backend.decoding_settings(),
    }
    size = cfg.checkpoint_every or len(items)
    if size < len(items):
        # Only when the job is cut, so records of a job decoded in one call stay as they were.
        decoding["checkpoint_every"] = size
    if cfg.forced is not None:
        # Only when on, so the fingerprints of other framings' records stay as they were.
        decoding["forced_choice"] = {
            "prefix": cfg.forced.prefix,
            "options": list(cfg.forced.options),
            "separator": cfg.forced.separator,
        }
    conversations = [build_messages(item, template) for item in items]
    if cfg.policy is not None:
        conversations = [[{"role": "system", "content": cfg.policy}, *c] for c in conversations]
        decoding["policy"] = {
            "prompt_sha256": hashlib.sha256(cfg.policy.encode()).hexdigest(),
            "max_sentences": POLICY_MAX_SENTENCES,
            "max_chars": POLICY_MAX_CHARS,
        }
    prompt_texts = [backend.render(c) for c in conversations]
    prints = {
        item["id"]: fingerprint(provenance, decoding, text)
        for item, text in zip(items, prompt_texts, strict=True)
    }
    out_path = Path(out_path)
    checkpoint = out_path.with_name(out_path.name + ".partial")
    forced_fields = ("forced_prediction", "forced_scores") if cfg.forced is not None else ()
    done = _load_checkpoint(checkpoint, prints, forced_fields)
    chunks = [list(range(start, min(start + size, len(items)))) for start in range(0, len(items), size)]
    # A chunk counts as done only whole: a partly written one is decoded again, all of it.
    todo_chunks = [chunk for chunk in chunks if any(items[i]["id"] not in done for i in chunk)]
    todo = [i for chunk in todo_chunks for i in chunk]
    resumed = len(items) - len(todo)
    stop = stop_check(cfg.framing) if cfg.stop_at_answer else None

    def record_for(index: int, generation: Completion) -> dict:
        item = items[index]
        text, trim = generation.text, {}
        if cfg.policy is not None:
            text, record = policy_trim(generation.text)
            trim = {
                "policy_trim": {**record, **({"untrimmed": generation.text} if record["trimmed"] else {})}
            }
        parsed = parse_reply(cfg.framing, text, item)
        forced = {}
        if cfg.forced is not None:
            if generation.forced_scores is None:
                raise RuntimeError(f"{item['id']}: the back-end returned no forced-choice scores")
            forced = {
                "forced_prediction": forced_prediction(generation.forced_scores),
                "forced_scores": generation.forced_scores,
            }
        extra = {"system_fingerprint": generation.system_fingerprint} if generation.system_fingerprint else {}
        return {
            **{k: item.get(k) for k in ITEM_FIELDS},
            **{k: item[k] for k in OPTIONAL_ITEM_FIELDS if item.get(k) is not None},
            "model": cfg.model_name,
            "framing": cfg.framing,
            "prompt": conversations[index],
            "raw_output": text,
            **trim,
            "prediction": parsed.prediction,
            "parse_status": parsed.status,
            "n_new_tokens": generation.completion_tokens,
            "finish_reason": generation.finish_reason,
            **forced,
            **extra,
            "decoding": decoding,
            "provenance": provenance,
            "fingerprint": prints[item["id"]],
        }

    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    with checkpoint.open("a", encoding="utf-8") as sink:

        def save(indices: list[int], generations: list[Completion]) -> None:
            for index, generation in zip(indices, generations, strict=True):
                record = record_for(index, generation)
                done[record["id"]] = record
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            sink.flush()

        key = job_key(reuse.weights, decoding, items, prompt_texts) if reuse else None
        reused = reuse.store.get_many([key]).get(key) if reuse and todo else None
        if reused is not None:
            save(todo, [_stored_completion(reused[items[i]["id"]], cfg.forced) for i in todo])
            logger.info("reused the replies of an identical earlier job (same weights, decoding, prompts)")
        elif todo:
            if resumed:
                logger.info(
                    "resuming: %d of %d chunks already checkpointed",
                    len(chunks) - len(todo_chunks),
                    len(chunks),
                )
            desc = f"{cfg.model_name} {cfg.framing} {Path(items_path).stem}"
            for n, chunk in enumerate(todo_chunks, start=1):
                generations = backend.complete(
                    [conversations[i] for i in chunk],
                    cfg.params,
                    keys=[items[i]["id"] for i in chunk],
                    stop=stop,
                    forced=cfg.forced,
                    desc=desc if len(todo_chunks) == 1 else f"{desc} ({n}/{len(todo_chunks)})",
                )
                save(chunk, generations)
    records = [done[item["id"]] for item in items]
    if reuse is not None and reused is None and resumed == 0:
        reuse.store.put_many([(key, _stored_replies(records))])
    write_jsonl(out_path, records)
    checkpoint.unlink(missing_ok=True)
    summary = {
        "items": len(records),
        "reused_from_checkpoint": resumed,
        "reused_from_identical_job": len(items) - resumed if reused is not None else 0,
        "parse_status": dict(Counter(r["parse_status"] for r in records)),
        "finish_reason": dict(Counter(r["finish_reason"] for r in records)),
    }
    if cfg.forced is not None:
        summary["forced_prediction"] = dict(Counter(r["forced_prediction"] for r in records))
    logger.info("wrote %s: %s", out_path, summary)
    return summary
