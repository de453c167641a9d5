"""Prompt sets for the harm-drift audit: the user's own JSONL or a published suite, as items.

Nothing is downloaded here: the user fetches a suite once and points ``path`` at it.

- ``jsonl``: the user's own file, one object a line with ``id``, ``prompt`` or ``messages``
  (a chat ending with a user turn), optional ``gold`` (YES, NO or an option letter) and optional
  ``group`` (default "all").
- ``bold`` (Dhamala et al. 2021, github.com/amazon-science/bold): ``path`` is its ``prompts/``
  folder or one ``<domain>_prompt.json`` in it. Group ``<domain>/<category>``.
- ``holisticbias`` (Smith et al. 2022, github.com/facebookresearch/ResponsibleNLP,
  ``holistic_bias/``): ``path`` is the ``sentences.csv`` its ``generate_sentences.py`` writes.
  Group: ``axis``.
- ``realtoxicityprompts`` (Gehman et al. 2020, allenai.org/data/real-toxicity-prompts):
  ``path`` is ``prompts.jsonl``. Group: "challenging" or "not challenging".
- ``hatecheck`` (Röttger et al. 2021, github.com/paul-rottger/hatecheck-data): ``path`` is
  ``test_suite_cases.csv``. Group: ``functionality``; condition: ``label_gold``.

Every item has the keys id, question, messages, gold_label, group, benchmark, condition, hateful,
prompt_set and source (``"<file>:<line>"``). Two suites add one key each: realtoxicityprompts
items carry ``prompt_toxicity`` (the prompt's published Perspective score, float or None) and
hatecheck items carry ``target`` (``target_ident``, None where empty). The suites' texts
(statements, sentence openings) are kept as published; the pipeline applies its own template.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path

from harmdrift.core.io import DataError, iter_jsonl
from harmdrift.data.load import RowError, show_value

FORMATS = ("jsonl", "bold", "holisticbias", "realtoxicityprompts", "hatecheck")

JSONL_KEYS = ("id", "prompt", "messages", "gold", "group")
ROLES = ("system", "user", "assistant")
DEFAULT_GROUP = "all"
HATECHECK_LABELS = ("hateful", "non-hateful")
BOLD_SUFFIX = "_prompt.json"

logger = logging.getLogger(__name__)

# Runs of characters unsafe in an id, and of underscores, become one underscore.
_UNSAFE_ID = re.compile(r"(?:[^\w.-]|_)+")
_OPTION_LETTER = re.compile(r"[A-Z]")


def _item(
    *,
    id: str,
    question: str,
    group: str,
    name: str,
    source: str,
    messages: list[dict] | None = None,
    gold_label: str | None = None,
    condition: str | None = None,
    hateful: bool | None = None,
) -> dict:
    return {
        "id": id,
        "question": question,
        "messages": messages,
        "gold_label": gold_label,
        "group": group,
        "benchmark": name,
        "condition": condition,
        "hateful": hateful,
        "prompt_set": name,
        "source": source,
    }


# --- jsonl ----------------------------------------------------------------------------------------


def _nonempty_str(row: dict, key: str) -> str:
    value = row[key]
    if not isinstance(value, str):
        raise RowError(key, f"expected a string, got {type(value).__name__} {show_value(value)}")
    if not value.strip():
        raise RowError(key, "must not be empty")
    return value


def _jsonl_messages(value: object) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise RowError("messages", f"expected a non-empty list of turns, got {show_value(value)}")
    turns = []
    for k, turn in enumerate(value):
        if not isinstance(turn, dict) or set(turn) != {"role", "content"}:
            raise RowError(
                f"messages[{k}]", f"expected {{'role': ..., 'content': ...}}, got {show_value(turn)}"
            )
        if turn["role"] not in ROLES:
            raise RowError(
                f"messages[{k}].role", f"must be one of {', '.join(ROLES)}, got {show_value(turn['role'])}"
            )
        if not isinstance(turn["content"], str):
            raise RowError(f"messages[{k}].content", f"expected a string, got {show_value(turn['content'])}")
        turns.append({"role": turn["role"], "content": turn["content"]})
    if turns[-1]["role"] != "user":
        raise RowError("messages", f"must end with a user turn, ends with {turns[-1]['role']!r}")
    if not turns[-1]["content"].strip():
        raise RowError(f"messages[{len(turns) - 1}].content", "the last user turn must not be empty")
    return turns


def _jsonl_gold(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        gold = value.strip().upper()
        if gold in ("YES", "NO") or _OPTION_LETTER.fullmatch(gold):
            return gold
    raise RowError("gold", f"must be YES, NO or one option letter A-Z, got {show_value(value)}")


def _jsonl_item(row: dict, name: str, source: str) -> dict:
    unknown = sorted(set(row) - set(JSONL_KEYS))
    if unknown:
        raise RowError(unknown[0], f"unknown key; allowed: {', '.join(JSONL_KEYS)}")
    if "id" not in row:
        raise RowError("id", "required key is missing")
    if isinstance(row["id"], int) and not isinstance(row["id"], bool):
        item_id = str(row["id"])
    else:
        item_id = _nonempty_str(row, "id")
    has_prompt, has_messages = "prompt" in row, "messages" in row
    if has_prompt and has_messages:
        raise RowError("prompt", "give either prompt or messages, not both")
    if has_messages:
        messages = _jsonl_messages(row["messages"])
        question = messages[-1]["content"]
    elif has_prompt:
        messages, question = None, _nonempty_str(row, "prompt")
    else:
        raise RowError("prompt", "required key is missing (or give messages)")
    group = _nonempty_str(row, "group") if "group" in row else DEFAULT_GROUP
    return _item(
        id=item_id,
        question=question,
        messages=messages,
        gold_label=_jsonl_gold(row.get("gold")),
        group=group,
        name=name,
        source=source,
    )


def _load_jsonl(path: Path, name: str) -> list[dict]:
    items = []
    first_line: dict[str, int] = {}
    for lineno, row in iter_jsonl(path):
        try:
            item = _jsonl_item(row, name, f"{path}:{lineno}")
        except RowError as err:
            raise DataError(f"{path}:{lineno}: {err}") from None
        if item["id"] in first_line:
            raise DataError(
                f"{path}:{lineno}: id: duplicate id {item['id']!r}, also on line {first_line[item['id']]}"
            )
        first_line[item["id"]] = lineno
        items.append(item)
    return items


# --- realtoxicityprompts --------------------------------------------------------------------------


def _rtp_item(row: dict, name: str, path: Path, lineno: int) -> dict:
    prompt = row.get("prompt")
    if not isinstance(prompt, dict):
        raise RowError("prompt", f"expected an object with a text, got {show_value(prompt)}")
    text = prompt.get("text")
    if not isinstance(text, str) or not text.strip():
        raise RowError("prompt.text", f"expected a non-empty string, got {show_value(text)}")
    challenging = row.get("challenging")
    if not isinstance(challenging, bool):
        raise RowError("challenging", f"expected true or false, got {show_value(challenging)}")
    toxicity = prompt.get("toxicity")
    if toxicity is not None and (isinstance(toxicity, bool) or not isinstance(toxicity, int | float)):
        raise RowError("prompt.toxicity", f"expected a number or null, got {show_value(toxicity)}")
    item = _item(
        id=f"rtp-{lineno}",
        question=text,
        group="challenging" if challenging else "not challenging",
        name=name,
        source=f"{path}:{lineno}",
    )
    item["prompt_toxicity"] = None if toxicity is None else float(toxicity)
    return item


def _load_rtp(path: Path, name: str) -> list[dict]:
    items = []
    for lineno, row in iter_jsonl(path):
        try:
            items.append(_rtp_item(row, name, path, lineno))
        except RowError as err:
            raise DataError(f"{path}:{lineno}: {err}") from None
    return items


# --- CSV suites -----------------------------------------------------------------------------------


def _csv_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, int, dict[str, str]]]:
    """Yield ``(line, row number, {column: cell})`` for each data row of a CSV file.

    ``line`` is where the row starts (a quoted cell may span lines); ``row number`` counts data
    rows from 1. Blank lines are skipped; the header is the first line that is not blank.
    """
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next((cells for cells in reader if cells), None)
            if header is None:
                raise DataError(f"{path}: empty file, no prompts")
            missing = [column for column in required if column not in header]
            if missing:
                found = ", ".join(header)
                raise DataError(
                    f"{path}:{reader.line_num}: missing column(s) {', '.join(missing)}; found: {found}"
                )
            row_number = 0
            start = reader.line_num + 1
            for cells in reader:
                lineno, start = start, reader.line_num + 1
                if not cells:
                    continue
                if len(cells) != len(header):
                    raise DataError(f"{path}:{lineno}: expected {len(header)} fields, got {len(cells)}")
                row_number += 1
                yield lineno, row_number, dict(zip(header, cells, strict=True))
        except csv.Error as err:
            raise DataError(f"{path}:{reader.line_num}: not valid CSV ({err})") from None


def _cell(row: dict[str, str], column: str) -> str:
    value = row[column]
    if not value.strip():
        raise RowError(column, "must not be empty")
    return value


def _load_holisticbias(path: Path, name: str) -> list[dict]:
    items = []
    for lineno, row_number, row in _csv_rows(path, ("text", "axis")):
        try:
            text, axis = _cell(row, "text"), _cell(row, "axis")
        except RowError as err:
            raise DataError(f"{path}:{lineno}: {err}") from None
        items.append(
            _item(
                id=f"holisticbias-{row_number}",
                question=text,
                group=axis,
                name=name,
                source=f"{path}:{lineno}",
            )
        )
    return items


def _load_hatecheck(path: Path, name: str) -> list[dict]:
    items = []
    first_line: dict[str, int] = {}
    for lineno, _, row in _csv_rows(path, ("functionality", "case_id", "test_case", "label_gold")):
        try:
            case_id = _cell(row, "case_id").strip()
            text = _cell(row, "test_case")
            functionality = _cell(row, "functionality")
            label = row["label_gold"].strip()
            if label not in HATECHECK_LABELS:
                raise RowError(
                    "label_gold", f"must be hateful or non-hateful, got {show_value(row['label_gold'])}"
                )
        except RowError as err:
            raise DataError(f"{path}:{lineno}: {err}") from None
        if case_id in first_line:
            raise DataError(
                f"{path}:{lineno}: case_id: duplicate case_id {case_id!r}, also on line {first_line[case_id]}"
            )
        first_line[case_id] = lineno
        item = _item(
            id=f"hatecheck-{case_id}",
            question=text,
            group=functionality,
            name=name,
            source=f"{path}:{lineno}",
            condition=label,
            hateful=label == "hateful",
        )
        target = row.get("target_ident", "").strip()
        item["target"] = target or None
        items.append(item)
    return items


# --- bold -----------------------------------------------------------------------------------------


def _sanitize(part: str) -> str:
    return _UNSAFE_ID.sub("_", part).strip("_") or "_"


def _bold_files(path: Path, key: str) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(path.glob(f"*{BOLD_SUFFIX}"))
    if not files:
        raise DataError(f"config key {key}.path: folder '{path}' holds no *{BOLD_SUFFIX} files")
    return files


class _LineFinder:
    """The line of each prompt string, found by scanning forward through the file's text.

    ``json`` keeps no positions; the prompts come in file order, so each one is searched for
    after the previous one. A prompt written with other escapes than ``json.dumps`` uses gets
    the line of the one before it.
    """

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.line = text, 0, 1

    def find(self, prompt: str) -> int:
        for encoded in (json.dumps(prompt, ensure_ascii=False), json.dumps(prompt)):
            found = self.text.find(encoded, self.pos)
            if found >= 0:
                self.line += self.text.count("\n", self.pos, found)
                self.pos = found + len(encoded)
                break
        return self.line


def _load_bold_file(path: Path, name: str) -> list[dict]:
    domain = path.name.removesuffix(BOLD_SUFFIX) if path.name.endswith(BOLD_SUFFIX) else path.stem
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise DataError(f"{path}: empty file, no prompts")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise DataError(
            f"{path}: $: expected {{category: {{name: [prompt, ...]}}}}, got {type(data).__name__}"
        )
    lines = _LineFinder(text)
    items = []
    seen: dict[str, str] = {}
    for category, names in data.items():
        if not isinstance(names, dict):
            raise DataError(
                f"{path}: $.{category}: expected {{name: [prompt, ...]}}, got {show_value(names)}"
            )
        group = f"{domain}/{category}"
        for person, prompts in names.items():
            where = f"$.{category}.{person}"
            if not isinstance(prompts, list):
                raise DataError(f"{path}: {where}: expected a list of prompts, got {show_value(prompts)}")
            for k, prompt in enumerate(prompts):
                if not isinstance(prompt, str) or not prompt.strip():
                    raise DataError(
                        f"{path}: {where}[{k}]: expected a non-empty string, got {show_value(prompt)}"
                    )
                item_id = "-".join(["bold", *(_sanitize(p) for p in (domain, category, person)), str(k)])
                if item_id in seen:
                    raise DataError(f"{path}: {where}[{k}]: id {item_id!r} also made for {seen[item_id]}")
                seen[item_id] = f"{where}[{k}]"
                source = f"{path}:{lines.find(prompt)}"
                items.append(_item(id=item_id, question=prompt, group=group, name=name, source=source))
    return items


def _load_bold(path: Path, name: str, key: str) -> list[dict]:
    items = []
    for file in _bold_files(path, key):
        items.extend(_load_bold_file(file, name))
    return items


# --- sampling -------------------------------------------------------------------------------------


def _allocate(sizes: list[int], n: int) -> list[int]:
    """How many of each group to draw: proportional to size, rounded by largest remainder.

    Every group gets at least one when ``n`` is at least the number of groups. Ties go to the
    group seen first, so the allocation depends on nothing but ``sizes`` and ``n``.
    """
    total = sum(sizes)
    quotas = [n * size / total for size in sizes]
    counts = [int(q) for q in quotas]
    floor = 1 if n >= len(sizes) else 0
    counts = [max(c, floor) for c in counts]
    order = range(len(sizes))
    while sum(counts) > n:  # only after raising groups to one: take back from the most over quota
        g = min((i for i in order if counts[i] > floor), key=lambda i: (quotas[i] - counts[i], -i))
        counts[g] -= 1
    while sum(counts) < n:
        g = max((i for i in order if counts[i] < sizes[i]), key=lambda i: (quotas[i] - counts[i], -i))
        counts[g] += 1
    return counts


def _sample(items: list[dict], n: int, seed: int) -> list[dict]:
    """A stratified sample of ``n`` items by group, in file order (see :func:`_allocate`)."""
    by_group: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_group.setdefault(item["group"], []).append(index)
    groups = list(by_group.values())
    rng = random.Random(seed)
    chosen: list[int] = []
    for indices, count in zip(groups, _allocate([len(g) for g in groups], n), strict=True):
        chosen.extend(rng.sample(indices, count))
    return [items[i] for i in sorted(chosen)]


# --- entry point ----------------------------------------------------------------------------------

_FILE_LOADERS = {
    "jsonl": _load_jsonl,
    "holisticbias": _load_holisticbias,
    "realtoxicityprompts": _load_rtp,
    "hatecheck": _load_hatecheck,
}


def load_prompt_set(
    fmt: str, path: str | os.PathLike, *, name: str, n: int | None, seed: int, key: str
) -> list[dict]:
    """Read one prompt set, check every row, and draw a stratified sample of it.

    Args:
        fmt: one of :data:`FORMATS`.
        path: the file (or, for ``bold``, the ``prompts/`` folder) the user downloaded.
        name: the prompt set's name in the config; every item's ``benchmark`` and ``prompt_set``.
        n: how many items to keep, stratified by ``group`` (None: all of them). More than the set
            holds keeps all and logs a warning.
        seed: seeds ``random.Random`` for the sample.
        key: the config key of this prompt set (``prompt_sets.mine``), named in errors about
            ``path`` and ``n``.

    Returns:
        The items in file order (files by name for a ``bold`` folder); keys as in the module
        docstring.

    Raises:
        ValueError: for an unknown format.
        DataError: for a missing path or a bad ``n`` (naming ``<key>.path`` or ``<key>.n``), an
            empty file (naming it), or a bad row (``<file>:<line>: <key>: ...``; ``bold``
            structure errors give the JSON path instead of a line).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown prompt set format {fmt!r}; known: {', '.join(FORMATS)}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise DataError(f"config key {key}.n: must be a positive integer or null, got {n!r}")
    path = Path(path)
    if not path.exists():
        raise DataError(f"config key {key}.path: file '{path}' not found")
    if fmt == "bold":
        items = _load_bold(path, name, key)
    else:
        if not path.is_file():
            raise DataError(f"config key {key}.path: '{path}' is not a file")
        items = _FILE_LOADERS[fmt](path, name)
    if not items:
        raise DataError(f"{path}: empty file, no prompts")
    logger.info("loaded %d prompts of %s (%s) from %s", len(items), name, fmt, path)
    return sample_items(items, n, seed, key=key)


def sample_items(items: list[dict], n: int | None, seed: int, *, key: str) -> list[dict]:
    """``n`` of ``items`` stratified by ``group`` (all of them when ``n`` is None or at least
    their number; more than there are logs a warning naming ``<key>.n``)."""
    if n is None or n == len(items):
        return items
    if n > len(items):
        logger.warning("%s.n = %d but the set holds only %d prompts; using all of them", key, n, len(items))
        return items
    return _sample(items, n, seed)
