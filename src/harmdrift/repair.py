"""Stage III data: safer rationales for confirmed drift cases, weighted by severity.

For every audited item whose explanation drifted (``drift`` true in the audit table), the
teacher is shown the question, the gold label and the judge's reason, and asked for a
stricter, harm-aware rationale. Replies go through Stage I's checks and fix rounds. A reply
that passes is then scored by the toxicity screen: it must not read as more toxic than M0's
own explanation of the same item, otherwise the teacher is asked again (up to
``repair.max_rescore_rounds`` times) and the case is finally dropped.

The kept rationales become a training set in which each case counts by its severity (as a
loss weight, or as repeated copies as in DART's code), mixed with Stage I examples so that
continued training does not forget the task. The joint-training ablation's data (Stage I
examples down-weighted by their own toxicity) and the drift-reduction figure live here too.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from harmdrift.audit import analysis_for_scoring
from harmdrift.generation import GenParams
from harmdrift.io import DataError, read_jsonl, write_json, write_jsonl
from harmdrift.parsing import CONFLICTING, FALLBACK_FORMAT, STRICT, conclusion_written, parse_binary
from harmdrift.prompts import build_messages, display_question, load_template
from harmdrift.rationales import (
    RationaleConfig,
    canonical_rationale,
    check_rationale,
    fix_messages,
    problem_kind,
)
from harmdrift.toxicity import check_label, screen_score

logger = logging.getLogger(__name__)

SEVERITIES = ("minor", "moderate", "severe", "extreme")
MODES = ("weight", "oversample")
# Shown when a repair passes the format checks but still scores above M0's explanation.
# A fixed text, not a template: it changes nothing the lead would tune, and the cache key
# already covers it through the messages.
RESCORE_NOTE = (
    "This explanation still reads as harmful to a toxicity screen: it scores higher than the "
    "earlier model's explanation of the same question. Rewrite it to be more neutral: describe "
    "groups only in abstract, respectful terms, do not mention any stereotype or harmful claim, "
    "keep 2 to 4 sentences, and end with the line {conclusion}."
)
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}
_TOO_TOXIC = "scores higher than M0"
_AUDIT_COLUMNS = ("id", "drift", "severity", "category", "reason", "score_base")


def _default_weights() -> dict[str, float]:
    # DART's code: minor 1, moderate 2, severe 3, extreme 4 copies.
    return {"minor": 1.0, "moderate": 2.0, "severe": 3.0, "extreme": 4.0}


@dataclass(frozen=True)
class RepairConfig:
    """Stage III settings (the ``repair`` config section).

    Attributes:
        severity_weights: weight of a repaired case per judge severity; all four levels, each > 0.
        mode: "weight" (one row per case, the weight scales its loss) or "oversample" (DART's
            code: round(weight) copies of the row, each with weight 1).
        replay_share: share of the final training set drawn from Stage I rationales, in [0, 1).
        seed: seed of the replay sample.
        max_rescore_rounds: re-asks of the teacher when a repair scores higher than M0's explanation.
        rounds: audit-and-repair rounds (1 = DART; more give m_dart_r2, m_dart_r3, ...).
    """

    severity_weights: dict[str, float] = field(default_factory=_default_weights)
    mode: str = "weight"
    replay_share: float = 0.5
    seed: int = 0
    max_rescore_rounds: int = 1
    rounds: int = 1

    def __post_init__(self) -> None:
        weights = self.severity_weights
        if not isinstance(weights, dict):
            raise ValueError(f"config key repair.severity_weights must be a mapping, got {weights!r}")
        unknown = sorted(set(weights) - set(SEVERITIES))
        missing = [s for s in SEVERITIES if s not in weights]
        if unknown or missing:
            raise ValueError(
                f"config key repair.severity_weights needs exactly {list(SEVERITIES)}; "
                f"missing {missing}, unknown {unknown}"
            )
        for name, value in weights.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(
                    f"config key repair.severity_weights.{name} must be a number > 0, got {value!r}"
                )
        if self.mode not in MODES:
            raise ValueError(f"config key repair.mode must be one of {MODES}, got {self.mode!r}")
        share = self.replay_share
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
            raise ValueError(f"config key repair.replay_share must be in [0, 1), got {share!r}")
        for key, low in (("seed", None), ("max_rescore_rounds", 0), ("rounds", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"config key repair.{key} must be an integer, got {value!r}")
            if low is not None and value < low:
                raise ValueError(f"config key repair.{key} must be >= {low}, got {value}")

    @classmethod
    def from_dict(cls, section: dict) -> RepairConfig:
        """Build from the ``repair`` config section.

        Keys this class does not know are left to the stages that use them (training settings
        of the repair run, say); the config schema is what rejects misspelt ones.
        """
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in section.items() if k in known}
        if "severity_weights" in values and isinstance(values["severity_weights"], dict):
            values["severity_weights"] = dict(values["severity_weights"])
        return cls(**values)


def severity_weight(severity: str, cfg: RepairConfig) -> float:
    """The training weight of a drift case of this severity.

    Raises:
        ValueError: naming the severity when it is not one of minor/moderate/severe/extreme.
    """
    if severity not in cfg.severity_weights:
        raise ValueError(f"unknown drift severity {severity!r}; known: {list(SEVERITIES)}")
    return float(cfg.severity_weights[severity])


def drift_reduction(n_before: int, n_after: int) -> float | None:
    """Relative drop in drift cases, ``1 - after / before``; None when there were none before.

    Negative when drift grew (DART reports -72.6% drift cases of M_DART against M_int as a
    reduction of 0.726).
    """
    if n_before < 0 or n_after < 0:
        raise ValueError(f"drift counts must be >= 0, got {n_before} and {n_after}")
    if n_before == 0:
        return None
    return 1 - n_after / n_before


# ---------------------------------------------------------------------------------------------
# Inputs


def _parse_bool(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DataError(f"{where}: column drift must be True or False, got {value!r}")


def read_drift_cases(audit_csv: str | Path) -> list[dict]:
    """The audit rows marked as drift, with severity checked and M0's score as a float.

    Raises:
        DataError: naming the file and line for a missing column, a drift value that is not a
            boolean, an unknown severity or a score that is not a number.
    """
    path = Path(audit_csv)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    cases = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _AUDIT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: audit table lacks column(s) {missing}")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not _parse_bool(row["drift"], where):
                continue
            if row["severity"] not in SEVERITIES:
                raise DataError(f"{where}: drift row {row['id']!r} has unknown severity {row['severity']!r}")
            try:
                base = float(row["score_base"])
            except ValueError:
                raise DataError(f"{where}: score_base must be a number, got {row['score_base']!r}") from None
            cases.append({**row, "drift": True, "score_base": base})
    return cases


def _by_id(path: str | Path, ids: list[str], what: str) -> dict[str, dict]:
    """The records of a JSONL file for the given ids; every id must be there."""
    wanted = set(ids)
    found = {row["id"]: row for row in read_jsonl(path) if row.get("id") in wanted}
    absent = sorted(wanted - set(found))
    if absent:
        more = " ..." if len(absent) > 5 else ""
        raise DataError(f"{path}: no {what} for drift case(s) {absent[:5]}{more}")
    return found


def _check_scorer(scorer, label: str) -> None:
    """Fail before any teacher call when the screen's label is not one the scorer gives."""
    labels = getattr(scorer, "labels", None)
    if labels is not None:
        check_label(label, labels, "the toxicity scorer")


def _label_scores(scorer, texts: list[str], label: str) -> list[float]:
    """The screen's score per text, read as the audit reads it (``toxicity.screen_score``)."""
    if not texts:
        return []
    scores = scorer.score(texts)
    if len(scores) != len(texts):
        raise ValueError(f"toxicity scorer returned {len(scores)} scores for {len(texts)} texts")
    return [screen_score(s, label) for s in scores]


# ---------------------------------------------------------------------------------------------
# Repair rationales


@dataclass
class _Case:
    """One drift case on its way through teacher asks, fix rounds and re-scores."""

    audit: dict
    item: dict
    pair: dict
    first: list[dict]
    history: list[dict]
    fix_rounds: int = 0
    rescore_rounds: int = 0
    reply: str = ""
    error: str | None = None
    problems: list[list[str]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    appended: bool = False
    drop_reason: str | None = None
    drop_kinds: list[str] = field(default_factory=list)

    def drop(self, reason: str, kinds: list[str]) -> None:
        """Close the case with a reason (and its kinds, for the summary's counts)."""
        self.drop_reason = reason
        self.drop_kinds = kinds

    @property
    def label(self) -> str:
        return self.item["gold_label"]


def _repair_messages(item: dict, template: str, reason: str) -> list[dict]:
    fields_ = {"question": display_question(item["question"]), "label": item["gold_label"], "reason": reason}
    return [{"role": "user", "content": template.format(**fields_).strip()}]


def _append_conclusion(case: _Case) -> None:
    """Stage I's ``append_missing_conclusion``: add the gold line when no conclusion is stated."""
    if not case.reply.strip() or parse_binary(case.reply).status in (STRICT, FALLBACK_FORMAT, CONFLICTING):
        return
    case.reply = f"{case.reply.rstrip()}\nConclusion: {case.label}"
    case.appended = True


def _ask(backend, cases: list[_Case], params: GenParams, tag: str) -> None:
    # Each re-score and fix round gets its own key: local teachers seed sampling by key, so a
    # re-ask must not draw the same reply again.
    keys = [f"{c.item['id']}#{tag}#s{c.rescore_rounds}#r{c.fix_rounds}" for c in cases]
    replies = backend.complete([c.history for c in cases], params, keys=keys, stop=conclusion_written)
    for case, reply in zip(cases, replies, strict=True):
        case.reply = reply.text
        case.error = reply.error


def _run_cases(cases, backend, params, cfg, repair, fix, scorer, screen_label, max_chars, tag) -> None:
    """Ask, check, fix and re-score until every case is kept or has a drop reason."""
    open_cases = cases
    while open_cases:
        _ask(backend, open_cases, params, tag)
        retry, passed = [], []
        for case in open_cases:
            if case.error:
                case.drop(case.error, [case.error.split(":")[0]])  # not cached: a re-run asks again
                continue
            if cfg.append_missing_conclusion:
                _append_conclusion(case)
            problems = check_rationale(case.reply, display_question(case.item["question"]), case.label, cfg)
            case.problems.append(problems)
            if not problems:
                passed.append(case)
            elif case.fix_rounds < cfg.max_fix_rounds:
                case.history = fix_messages(case.history, case.reply, problems, fix, case.label)
                case.fix_rounds += 1
                retry.append(case)
            else:
                case.drop("; ".join(problems), [problem_kind(p) for p in problems])
        texts = [analysis_for_scoring(c.reply, max_chars) for c in passed]
        for case, score in zip(passed, _label_scores(scorer, texts, screen_label), strict=True):
            case.scores.append(score)
            base = case.audit["score_base"]
            if score <= base:
                continue
            if case.rescore_rounds < repair.max_rescore_rounds:
                # A fresh ask: the repair prompt, the reply that still reads as harmful, and a note
                # saying so. Fix rounds start again for the new reply.
                note = RESCORE_NOTE.format(conclusion=f'"Conclusion: {case.label}"')
                case.history = [
                    *case.first,
                    {"role": "assistant", "content": case.reply},
                    {"role": "user", "content": note},
                ]
                case.rescore_rounds += 1
                case.fix_rounds = 0
                retry.append(case)
            else:
                case.drop(f"{_TOO_TOXIC} ({score:.4f} > {base:.4f})", [_TOO_TOXIC])
        open_cases = retry


def _record(case: _Case, provenance: dict) -> dict:
    audit = case.audit
    return {
        "id": case.item["id"],
        "benchmark": case.item["benchmark"],
        "condition": case.item["condition"],
        "gold_label": case.label,
        "label_source": "gold",
        "severity": audit["severity"],
        "category": audit["category"],
        "judge_reason": audit["reason"],
        "base_score": audit["score_base"],
        "score_base": audit["score_base"],
        "drifted_analysis": (case.pair.get("tuned") or {}).get("analysis"),
        "fix_rounds": case.fix_rounds,
        "rescore_rounds": case.rescore_rounds,
        "scores": case.scores,
        "conclusion_appended": case.appended,
        "problems": case.problems,
        "raw_reply": case.reply,
        "teacher": provenance,
    }


def write_repair_rationales(
    audit_csv: str | Path,
    pairs_jsonl: str | Path,
    items_path: str | Path,
    teacher_template: str | Path,
    fix_template: str | Path,
    student_template: str | Path,
    out_path: str | Path,
    dropped_path: str | Path,
    summary_path: str | Path,
    *,
    backend,
    params: GenParams,
    cfg: RationaleConfig,
    repair: RepairConfig,
    scorer,
    screen_label: str,
    max_chars: int,
    tag: str = "repair",
) -> dict:
    """Ask the teacher for a safer rationale per drift case and keep those that pass.

    A reply must pass Stage I's checks (with the same fix rounds) and then score no higher
    on the toxicity screen than M0's explanation of the item (``score_base`` in the audit
    table); otherwise the teacher is asked again, up to ``repair.max_rescore_rounds`` times,
    and the case is dropped with reason "scores higher than M0 (x > y)".

    Args:
        audit_csv: the audit table of the model being repaired (columns id, drift, severity,
            category, reason, score_base, ...).
        pairs_jsonl: the audit's pairs file; the drifted explanation is recorded for reference.
        items_path: the audited split (question text, gold label, benchmark, condition).
        teacher_template: the repair prompt ({question}, {label}, {reason}).
        fix_template: the format-fix prompt of Stage I ({problems}, {conclusion}).
        student_template: the student's prompt; kept rows carry the training conversation.
        out_path: kept repair rationales (JSONL).
        dropped_path: dropped cases with their reason (JSONL).
        summary_path: counts (JSON).
        backend: the teacher's chat back-end.
        params: the teacher's decoding settings.
        cfg: Stage I's checks and fix rounds (``distill`` section, gold labels).
        repair: the ``repair`` section.
        scorer: the toxicity screen (``score(texts) -> [{label: score}]``, ``describe()``).
        screen_label: the scorer label the audit screened on.
        max_chars: characters of the analysis scored (as in the audit).
        tag: part of each request key; give later repair rounds their own (e.g. "repair_r2").

    Returns:
        The summary written to ``summary_path``.

    Raises:
        DataError: for a bad audit table, or drift cases missing from the items or pairs file.
    """
    template = load_template(teacher_template, ("question", "label", "reason"))
    fix = load_template(fix_template, ("problems", "conclusion"))
    student = load_template(student_template)
    _check_scorer(scorer, screen_label)
    audit_rows = read_drift_cases(audit_csv)
    ids = [row["id"] for row in audit_rows]
    items = _by_id(items_path, ids, "item") if ids else {}
    pairs = _by_id(pairs_jsonl, ids, "audit pair") if ids else {}
    cases = []
    for row in audit_rows:
        item = items[row["id"]]
        first = _repair_messages(item, template, row["reason"])
        cases.append(_Case(row, item, pairs[row["id"]], first, list(first)))
    if cases:
        _run_cases(cases, backend, params, cfg, repair, fix, scorer, screen_label, max_chars, tag)
    provenance = backend.describe()
    kept, dropped = [], []
    for case in cases:
        record = _record(case, provenance)
        if case.drop_reason:
            dropped.append({**record, "reason": case.drop_reason, "reason_kinds": case.drop_kinds})
            continue
        rationale = canonical_rationale(case.reply, case.label)
        kept.append(
            {
                **record,
                "label": case.label,
                "rationale": rationale,
                "repair_score": case.scores[-1],
                "messages": [
                    *build_messages(case.item, student),
                    {"role": "assistant", "content": rationale},
                ],
                # Severity weights are applied by build_repair_set, where the mode is chosen.
                "weight": 1.0,
            }
        )
    write_jsonl(out_path, kept)
    write_jsonl(dropped_path, dropped)
    summary = _repair_summary(kept, dropped, cfg, repair, params, provenance, scorer, screen_label, max_chars)
    write_json(summary_path, summary)
    logger.info("repair rationales: %s", json.dumps({k: summary[k] for k in ("cases", "kept", "dropped")}))
    return summary


def _repair_summary(kept, dropped, cfg, repair, params, teacher, scorer, screen_label, max_chars) -> dict:
    reasons = Counter(kind for row in dropped for kind in row["reason_kinds"])
    summary = {
        "cases": len(kept) + len(dropped),
        "kept": len(kept),
        "dropped": len(dropped),
        "dropped_by_reason": dict(reasons),
        "kept_by_severity": {s: sum(r["severity"] == s for r in kept) for s in SEVERITIES},
        "rescored": sum(r["rescore_rounds"] > 0 for r in [*kept, *dropped]),
        "rescored_kept": sum(r["rescore_rounds"] > 0 for r in kept),
        "fixed": sum(r["fix_rounds"] > 0 for r in kept),
        "config": asdict(cfg),
        "repair": asdict(repair),
        "decoding": params.as_dict(),
        "teacher": teacher,
        "scorer": scorer.describe(),
        "screen_label": screen_label,
        "max_chars": max_chars,
    }
    if not summary["cases"]:
        summary["note"] = "no drift cases in the audit: nothing to repair"
    return summary


# ---------------------------------------------------------------------------------------------
# Training sets


def _copies(weight: float) -> int:
    # Half rounds up (Python's round() would send 2.5 to 2), and every case appears at least once.
    return max(1, math.floor(weight + 0.5))


def replay_count(n_repair: int, share: float, available: int) -> int:
    """Stage I rows to add so they make up ``share`` of the final set, capped at what exists."""
    if not 0 <= share < 1:
        raise ValueError(f"config key repair.replay_share must be in [0, 1), got {share}")
    return min(available, round(n_repair * share / (1 - share)))


def build_repair_set(
    repair_rationales: str | Path,
    stage1_rationales: str | Path,
    out_path: str | Path,
    summary_path: str | Path,
    *,
    cfg: RepairConfig,
) -> dict:
    """The Stage III training set: repaired cases weighted by severity, plus Stage I replay.

    In mode "weight" each case is one row whose weight is its severity weight; in mode
    "oversample" (DART's code) it is round(weight) copies of weight 1. Stage I rows (weight 1)
    are then added so that they make up ``replay_share`` of the rows:
    ``n_replay = round(n_repair_rows * share / (1 - share))``, capped at the Stage I rows whose
    ids are not among the repaired cases, drawn with ``cfg.seed``. Each row carries ``source``
    ("repair" or "replay").

    With no repaired case the output is empty (there is no drift left to repair) and the
    summary says so; the training rule must then skip the round.

    Returns:
        The summary written to ``summary_path``.
    """
    repaired = read_jsonl(repair_rationales)
    rows, weight_by_severity = [], defaultdict(float)
    for row in repaired:
        weight = severity_weight(row["severity"], cfg)
        if cfg.mode == "weight":
            rows.append({**row, "weight": weight, "source": "repair"})
            weight_by_severity[row["severity"]] += weight
        else:
            n = _copies(weight)
            rows += [{**row, "weight": 1.0, "copy": i, "source": "repair"} for i in range(n)]
            weight_by_severity[row["severity"]] += n
    repaired_ids = {row["id"] for row in repaired}
    stage1 = [r for r in read_jsonl(stage1_rationales) if r["id"] not in repaired_ids]
    pool = sorted(stage1, key=lambda r: r["id"])  # file order must not change the sample
    n_replay = replay_count(len(rows), cfg.replay_share, len(pool)) if rows else 0
    replay = random.Random(cfg.seed).sample(pool, n_replay)
    rows += [{**r, "weight": 1.0, "source": "replay"} for r in replay]
    write_jsonl(out_path, rows)
    wanted = round((len(rows) - n_replay) * cfg.replay_share / (1 - cfg.replay_share))
    summary = {
        "repair_cases": len(repaired),
        "repair_rows": len(rows) - n_replay,
        "replay_rows": n_replay,
        "replay_available": len(pool),
        "replay_capped": n_replay < wanted,
        "rows": len(rows),
        "replay_share_actual": n_replay / len(rows) if rows else None,
        "cases_by_severity": {s: sum(r["severity"] == s for r in repaired) for s in SEVERITIES},
        "weight_by_severity": {s: weight_by_severity[s] for s in SEVERITIES},
        "total_weight": sum(r["weight"] for r in rows),
        "config": asdict(cfg),
    }
    if not repaired:
        summary["note"] = "no repaired drift cases: no drift left to repair, nothing to train"
    write_json(summary_path, summary)
    logger.info("repair set: %d repair rows, %d replay rows", summary["repair_rows"], n_replay)
    return summary


def joint_penalty_weights(
    stage1_rationales: str | Path,
    out_path: str | Path,
    summary_path: str | Path,
    *,
    scorer,
    screen_label: str,
    max_chars: int,
    strength: float,
    floor: float = 0.05,
) -> dict:
    """The joint-training ablation's data: Stage I examples down-weighted by their own toxicity.

    Each example's weight becomes ``max(floor, 1 - strength * tox)``, where ``tox`` is the
    screen's ``screen_label`` score of the rationale's analysis (conclusion removed, first
    ``max_chars`` characters, as in the audit). ``strength`` 0 leaves every weight at 1; the
    floor keeps every weight above zero, which training requires. Rows gain ``tox_score``.

    Args:
        stage1_rationales: Stage I's kept rationales.
        out_path: the weighted training set (JSONL).
        summary_path: mean and smallest weight, number penalised (weight < 1), settings (JSON).
        scorer: the toxicity screen.
        screen_label: the scorer label to read.
        max_chars: characters of the analysis scored.
        strength: how strongly toxicity lowers the weight (>= 0).
        floor: the smallest weight, in (0, 1].

    Raises:
        ValueError: naming ``joint.strength`` or ``joint.floor`` when out of range.
    """
    if isinstance(strength, bool) or not isinstance(strength, int | float) or strength < 0:
        raise ValueError(f"config key joint.strength must be a number >= 0, got {strength!r}")
    if not 0 < floor <= 1:
        raise ValueError(f"config key joint.floor must be in (0, 1], got {floor!r}")
    _check_scorer(scorer, screen_label)
    rows = read_jsonl(stage1_rationales)
    texts = [analysis_for_scoring(row["rationale"], max_chars) for row in rows]
    tox = _label_scores(scorer, texts, screen_label)
    out = [
        {**row, "tox_score": t, "weight": max(floor, 1 - strength * t)}
        for row, t in zip(rows, tox, strict=True)
    ]
    write_jsonl(out_path, out)
    weights = [row["weight"] for row in out]
    summary = {
        "rows": len(out),
        "mean_weight": sum(weights) / len(weights) if weights else None,
        "min_weight": min(weights) if weights else None,
        "penalised": sum(w < 1 for w in weights),
        "at_floor": sum(w == floor for w in weights),
        "mean_tox": sum(tox) / len(tox) if tox else None,
        "strength": strength,
        "floor": floor,
        "screen_label": screen_label,
        "max_chars": max_chars,
        "scorer": scorer.describe(),
    }
    write_json(summary_path, summary)
    counts = {k: summary[k] for k in ("rows", "mean_weight", "penalised")}
    logger.info("joint weights: %s", json.dumps(counts))
    return summary


def run_repair_rationales(
    *, inputs: dict, outputs: dict, teacher: dict, distill: dict, repair: dict, audit: dict,
    cache_dir: str, tag: str, threads: int | None = None,
) -> dict:  # fmt: skip
    """The write_repair_rationales rule's body: teacher and scorer from config, then the repairs."""
    from harmdrift.audit import make_audit_scorer
    from harmdrift.backends import write_usage
    from harmdrift.config import chat_backend, rationale_config, section_params
    from harmdrift.generation import set_threads

    set_threads(threads)
    backend, params = chat_backend(teacher, cache_dir), section_params(teacher)
    scorer, label = make_audit_scorer(audit, cache_dir)
    try:
        return write_repair_rationales(
            inputs["audit"], inputs["pairs"], inputs["split_items"], inputs["teacher_prompt"],
            inputs["fix_prompt"], inputs["student_prompt"], outputs["rationales"], outputs["dropped"],
            outputs["summary"], backend=backend, params=params, cfg=rationale_config(distill, "gold"),
            repair=RepairConfig.from_dict(repair), scorer=scorer, screen_label=label,
            max_chars=audit["max_chars"], tag=tag,
        )  # fmt: skip
    finally:
        write_usage(outputs["usage"], backend)


def run_joint_weights(*, stage1: str, outputs: dict, joint: dict, audit: dict, cache_dir: str) -> dict:
    """The joint_weights rule's body: score the Stage I rationales and lower their weights."""
    from harmdrift.audit import make_audit_scorer

    scorer, label = make_audit_scorer(audit, cache_dir)
    return joint_penalty_weights(
        stage1, outputs["examples"], outputs["summary"], scorer=scorer, screen_label=label,
        max_chars=audit["max_chars"], strength=joint["strength"], floor=joint["floor"],
    )  # fmt: skip
