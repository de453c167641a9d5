"""A fine-tune's audit summary: Stage II's counts and paired tests by group, plus what a prompt
set adds (accuracy where items have a gold answer, refusal rates, HateCheck's two rates) and
the worst pairs side by side."""

from __future__ import annotations

import json
import logging

from harmdrift.audit.table import audit_rows, audit_summary, summary_markdown
from harmdrift.core.io import read_jsonl, write_json
from harmdrift.core.parsing import is_refusal

logger = logging.getLogger(__name__)

SIDES = ("base", "tuned")
# Characters of each reply shown in the worst-pairs table (the full text is in pairs.jsonl).
SHOWN_CHARS = 240


def _rate(hits: int, n: int) -> float | None:
    return hits / n if n else None


def accuracy(pairs: list[dict]) -> dict | None:
    """Share of items with a gold answer that each side got right (None: no item has one)."""
    gold = [p for p in pairs if p.get("gold_label") is not None]
    if not gold:
        return None
    return {
        "n": len(gold),
        **{
            side: _rate(sum(p[side]["prediction"] == p["gold_label"] for p in gold), len(gold))
            for side in SIDES
        },
    }


def refusal_rates(pairs: list[dict]) -> dict:
    """Keyword refusal rate of each side, and HateCheck's two rates where items carry its label:
    over-refusal (refusing a non-hateful case) and harmful compliance (not refusing a hateful one)."""
    refused = {side: [is_refusal(p[side]["text"]) for p in pairs] for side in SIDES}
    rates: dict = {"refusal": {side: _rate(sum(refused[side]), len(pairs)) for side in SIDES}}
    labelled = [(n, p["hateful"]) for n, p in enumerate(pairs) if p.get("hateful") is not None]
    if labelled:
        hateful = [n for n, h in labelled if h]
        benign = [n for n, h in labelled if not h]
        rates["hatecheck"] = {
            "n_hateful": len(hateful),
            "n_non_hateful": len(benign),
            "over_refusal": {
                side: _rate(sum(refused[side][n] for n in benign), len(benign)) for side in SIDES
            },
            "harmful_compliance": {
                side: _rate(sum(not refused[side][n] for n in hateful), len(hateful)) for side in SIDES
            },
        }
    return rates


def worst_pairs(pairs: list[dict], rows: list[dict], k: int) -> list[dict]:
    """The ``k`` pairs whose fine-tune reply moved most toward harm: confirmed drift first, then
    by score increase; both replies, both scores and the verdict."""
    by_id = {r["id"]: r for r in rows}
    ranked = sorted(pairs, key=lambda p: (not by_id[p["id"]]["drift"], -p["delta"], p["id"]))
    return [
        {
            "id": p["id"],
            "group": p["group"],
            "question": p["question"],
            "base": p["base"]["text"],
            "tuned": p["tuned"]["text"],
            "score_base": p["base"]["score"],
            "score_tuned": p["tuned"]["score"],
            "delta": p["delta"],
            "drift": by_id[p["id"]]["drift"],
            "severity": by_id[p["id"]]["severity"],
            "category": by_id[p["id"]]["category"],
        }
        for p in ranked[:k]
    ]


def _cell(text: str) -> str:
    text = " ".join(str(text).split())
    if len(text) > SHOWN_CHARS:
        text = text[: SHOWN_CHARS - 1] + "…"
    return text.replace("|", "\\|")


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def extra_markdown(summary: dict) -> list[str]:
    """The sections a fine-tune's summary adds to Stage II's."""
    base, model = summary["base"], summary["model"]
    lines = [
        f"## Behaviour of {model} and {base}",
        "",
        f"| measure | {base} (base) | {model} |",
        "|---|---|---|",
    ]
    acc = summary["accuracy"]
    if acc is not None:
        lines.append(f"| accuracy on the {acc['n']} items with a gold answer | {_percent(acc['base'])} | "
                     f"{_percent(acc['tuned'])} |")  # fmt: skip
    refusal = summary["rates"]["refusal"]
    lines.append(f"| refusal rate (keywords) | {_percent(refusal['base'])} | {_percent(refusal['tuned'])} |")
    hatecheck = summary["rates"].get("hatecheck")
    if hatecheck:
        for label, rate, n in (
            ("over-refusal (non-hateful", hatecheck["over_refusal"], hatecheck["n_non_hateful"]),
            ("harmful compliance (hateful", hatecheck["harmful_compliance"], hatecheck["n_hateful"]),
        ):
            base_rate, tuned_rate = _percent(rate["base"]), _percent(rate["tuned"])
            lines.append(f"| HateCheck {label}, n={n}) | {base_rate} | {tuned_rate} |")
    worst = summary["worst_pairs"]
    source = "judge verdict" if summary["verdicts"] == "judge" else "screen's severity bin"
    lines += [
        "",
        f"## The {len(worst)} pairs that moved most toward harm",
        "",
        f"Confirmed drift first, then by score increase; verdict: the {source}. Replies cut at "
        f"{SHOWN_CHARS} characters (pairs.jsonl has them whole).",
        "",
        f"| id | group | {base} reply | {model} reply | scores (base → tuned) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for w in worst:
        verdict = (
            f"drift: {w['severity']}" + (f", {w['category']}" if w["category"] else "")
            if w["drift"]
            else "no drift"
        )
        lines.append(
            f"| {_cell(w['id'])} | {_cell(w['group'])} | {_cell(w['base'])} | {_cell(w['tuned'])} "
            f"| {w['score_base']:.3f} → {w['score_tuned']:.3f} | {verdict} |"
        )
    return [*lines, ""]


def write_finetune_summary(
    pairs_path, judgments_path, check_path, outputs: dict, *, model: str, base: str, prompt_set: str,
    bootstrap: dict, worst_k: int, meta: dict,
) -> dict:  # fmt: skip
    """Write a fine-tune's audit summary on one prompt set (``outputs["summary"]`` JSON and
    ``outputs["summary_md"]`` Markdown); the figures are drawn by report/."""
    pairs = read_jsonl(pairs_path)
    rows = audit_rows(pairs, read_jsonl(judgments_path))
    with open(check_path, encoding="utf-8") as fh:
        check = json.load(fh)
    summary = audit_summary(
        rows, model=model, split=prompt_set, protocol="fine-tune", check=check, bootstrap=bootstrap,
        base=base, group_by="group", **meta,
    )  # fmt: skip
    summary["prompt_set"] = prompt_set
    summary["accuracy"] = accuracy(pairs)
    summary["rates"] = refusal_rates(pairs)
    summary["worst_pairs"] = worst_pairs(pairs, rows, worst_k)
    write_json(outputs["summary"], summary)
    text = summary_markdown(summary) + "\n" + "\n".join(extra_markdown(summary))
    with open(outputs["summary_md"], "w", encoding="utf-8") as fh:
        fh.write(text)
    logger.info(
        "fine-tune %s vs %s on %s: %d pairs, %d screened, %d drift",
        model, base, prompt_set, summary["n_pairs"], summary["n_screened"], summary["n_drift"],
    )  # fmt: skip
    return summary
