"""What the ``finetunes:`` and ``prompt_sets:`` config sections describe, and their checks.

A fine-tune is a model the pipeline did not train: a PEFT adapter on a base, a full checkpoint,
or a model behind an OpenAI-compatible endpoint. Each is audited against its base on its
prompt sets and, where asked, repaired by Stage III: a local fine-tune becomes ``<name>_dart``
(audited like its parent), an API one gets a chat-format repair set instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harmdrift.core.io import DataError
from harmdrift.core.vocab import BINARY, OPEN
from harmdrift.data.prompt_sets import load_prompt_set

REPAIR_SUFFIX = "_dart"
# How each prompt-set format is asked and read: its framing (binary: the benchmark's YES/NO
# question with the forced choice; open: free text, read for YES/NO or a letter where the item
# has a gold answer) and its default template (a prompts.<framing> key, or a file).
FORMATS = {
    "benchmark": (BINARY, "prompts.binary"),
    "open": (OPEN, "prompts.open"),
    "jsonl": (OPEN, "config/prompts/finetune_plain.txt"),
    "holisticbias": (OPEN, "config/prompts/finetune_plain.txt"),
    "bold": (OPEN, "config/prompts/finetune_continue.txt"),
    "realtoxicityprompts": (OPEN, "config/prompts/finetune_continue.txt"),
    "hatecheck": (OPEN, "config/prompts/finetune_reply.txt"),
}
# Formats whose prompts come from a file the user names (the others from this run's splits).
FILE_FORMATS = ("jsonl", "bold", "holisticbias", "realtoxicityprompts", "hatecheck")


@dataclass(frozen=True)
class Finetune:
    """One audited model and what it is compared against.

    ``load`` is what the tuned side loads (a model spec: the base for an adapter, the checkpoint
    itself) with ``adapter`` on top; ``base`` is the comparison model (a model spec, or an API
    model name). A repaired fine-tune (``parent`` set) loads its parent's model with the repair
    adapter and keeps its parent's base.
    """

    name: str
    backend: str  # hf or openai
    load: str
    revision: str | None
    adapter: str | None
    base: str
    base_revision: str | None
    prompt_sets: tuple[str, ...]
    repair: bool
    repair_on: str | None
    parent: str | None = None

    @property
    def local(self) -> bool:
        return self.backend == "hf"


def template_for(prompt_set: dict, prompts: dict) -> str:
    """The template file a prompt set is asked with: its own, else its format's default."""
    if prompt_set["template"]:
        return prompt_set["template"]
    default = FORMATS[prompt_set["format"]][1]
    return prompts[default.split(".", 1)[1]] if default.startswith("prompts.") else default


def framing_for(prompt_set: dict) -> str:
    return FORMATS[prompt_set["format"]][0]


def finetune_entries(config: dict, *, repair_dir) -> dict[str, Finetune]:
    """Every fine-tune of the config by name, each local repaired one's ``<name>_dart`` after it.

    Args:
        config: the validated config (defaults filled).
        repair_dir: name -> the folder the repair adapter of fine-tune ``name`` is written to.
    """
    prompt_sets = list(config["prompt_sets"])
    entries: dict[str, Finetune] = {}
    for name, entry in config["finetunes"].items():
        local = entry["backend"] == "hf"
        sets = tuple(entry["prompt_sets"] or prompt_sets)
        repair_on = entry["repair_on"] or ("benchmark" if "benchmark" in sets else None)
        tuned = Finetune(
            name=name,
            backend=entry["backend"],
            load=(entry["model"] or config["student"]["model"]) if local else entry["model"],
            revision=entry["revision"] if entry["model"] else config["student"]["revision"],
            adapter=entry["adapter"],
            base=entry["base"] or (config["student"]["model"] if local else ""),
            base_revision=entry["base_revision"] if entry["base"] else config["student"]["revision"],
            prompt_sets=sets,
            repair=entry["repair"] and repair_on is not None,
            repair_on=repair_on,
        )
        entries[name] = tuned
        if tuned.repair and local:
            repaired = f"{name}{REPAIR_SUFFIX}"
            entries[repaired] = Finetune(
                name=repaired, backend="hf", load=tuned.load, revision=tuned.revision,
                adapter=str(repair_dir(name)), base=tuned.base, base_revision=tuned.base_revision,
                prompt_sets=sets, repair=False, repair_on=None, parent=name,
            )  # fmt: skip
    return entries


def _recorded_base(adapter: Path) -> str | None:
    try:
        recorded = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return recorded.get("base_model_name_or_path")


def _same_model(recorded: str, base: str) -> bool:
    """Whether an adapter's recorded base names ``base``: the same string, or the same folder."""
    if recorded.rstrip("/") == base.rstrip("/"):
        return True
    a, b = Path(recorded).expanduser(), Path(base).expanduser()
    return a.is_dir() and b.is_dir() and a.resolve() == b.resolve()


def check_finetunes(config: dict, builtin_models) -> list[str]:
    """Every problem of the ``finetunes`` and ``prompt_sets`` sections, each naming its key:
    an entry that is not exactly one kind, a name that clashes, an unknown or unusable prompt
    set, a missing folder or file, an adapter trained on another base. (A missing API key
    variable is :func:`harmdrift.config.check_api_keys`'s, as for the teacher and judge.)"""
    problems: list[str] = []
    sets = config["prompt_sets"]
    for name, entry in sets.items():
        key = f"config key prompt_sets.{name}"
        fmt = entry["format"]
        if fmt in FILE_FORMATS:
            if entry["path"] is None:
                problems.append(f"{key}.path: format {fmt} reads your copy of its file; set path")
            elif not Path(entry["path"]).exists():
                problems.append(f"{key}.path: {entry['path']!r} not found")
        elif entry["path"] is not None:
            problems.append(f"{key}.path: format {fmt} reads this run's own prompts; remove path")
        if entry["template"] is not None and not Path(entry["template"]).is_file():
            problems.append(f"{key}.template: template file {entry['template']!r} not found")
    taken = set(builtin_models)
    names = set(config["finetunes"])
    for name, entry in config["finetunes"].items():
        key = f"config key finetunes.{name}"
        if name in taken:
            problems.append(f"{key}: the name is a built-in model's; choose another")
        if name.endswith(REPAIR_SUFFIX) and name.removesuffix(REPAIR_SUFFIX) in names:
            problems.append(f"{key}: the name is the repair of finetunes.{name.removesuffix(REPAIR_SUFFIX)}")
        for set_name in entry["prompt_sets"] or []:
            if set_name not in sets:
                problems.append(
                    f"{key}.prompt_sets: no prompt set {set_name!r} (prompt_sets has {sorted(sets)})"
                )
        if not (entry["prompt_sets"] or sets):
            problems.append(f"{key}.prompt_sets: no prompt set to audit it on (prompt_sets is empty)")
        problems += _check_repair_on(key, entry, sets)
        if entry["backend"] == "openai":
            problems += _check_api_entry(key, entry)
        else:
            problems += _check_local_entry(key, entry, config["student"]["model"])
    return problems


def _check_repair_on(key: str, entry: dict, sets: dict) -> list[str]:
    chosen = entry["repair_on"]
    if chosen is None:
        return []
    if chosen not in (entry["prompt_sets"] or sets):
        return [f"{key}.repair_on: {chosen!r} is not one of the prompt sets it is audited on"]
    if sets[chosen]["format"] not in ("benchmark", "jsonl"):
        return [
            f"{key}.repair_on: the repair teacher writes YES/NO rationales, so it needs a prompt set "
            f"with gold labels (format benchmark or jsonl), not {sets[chosen]['format']}"
        ]
    return []


def _check_api_entry(key: str, entry: dict) -> list[str]:
    problems = []
    if entry["adapter"] is not None:
        problems.append(f"{key}.adapter: backend openai takes a model name, not a local adapter")
    if entry["model"] is None:
        problems.append(f"{key}.model: backend openai needs the fine-tune's model name on the server")
    if entry["base"] is None:
        problems.append(f"{key}.base: backend openai needs the base model's name on the same server")
    if entry["base_url"] is None:
        problems.append(
            f"{key}.base_url: backend openai needs the server's URL (e.g. http://127.0.0.1:8000/v1)"
        )
    return problems


def _check_local_entry(key: str, entry: dict, student_model: str) -> list[str]:
    if entry["base_url"] is not None:
        return [f"{key}.base_url: only backend openai reaches a server; set backend: openai or remove it"]
    if (entry["adapter"] is None) == (entry["model"] is None):
        return [f"{key}: set exactly one of adapter (a PEFT adapter folder) or model (a full checkpoint)"]
    if entry["model"] is not None:
        path = entry["model"]
        if (path.startswith((".", "/", "~")) or Path(path).exists()) and not Path(path).expanduser().is_dir():
            return [f"{key}.model: checkpoint folder {path!r} not found"]
        return []
    adapter = Path(entry["adapter"]).expanduser()
    if not adapter.is_dir():
        return [f"{key}.adapter: adapter folder {entry['adapter']!r} not found"]
    if not (adapter / "adapter_config.json").is_file():
        return [f"{key}.adapter: {entry['adapter']!r} has no adapter_config.json (not a PEFT adapter folder)"]
    recorded = _recorded_base(adapter)
    base = entry["base"] or student_model
    if recorded and not _same_model(recorded, base):
        which = f"{key}.base" if entry["base"] else f"{key}.base (default: student.model)"
        return [
            f"{which}: the adapter was trained on {recorded!r} (its adapter_config.json) but would be "
            f"compared against and loaded on {base!r}; set {key}.base to the model it was trained on"
        ]
    return []


def check_prompt_files(config: dict) -> list[str]:
    """Read every user prompt file a fine-tune is audited on, as the jobs will, so a bad line
    fails before any job starts (``file:line: key``); a jsonl set a repair is drawn from must
    give every item a YES/NO gold label."""
    entries = finetune_entries(config, repair_dir=str).values()
    used = {name for entry in entries for name in entry.prompt_sets}
    repair_on = {entry.repair_on for entry in entries if entry.repair}
    problems = []
    for name, entry in config["prompt_sets"].items():
        if name not in used or entry["format"] not in FILE_FORMATS or not Path(entry["path"]).exists():
            continue
        key = f"prompt_sets.{name}"
        try:
            items = load_prompt_set(entry["format"], entry["path"], name=name, n=None, seed=0, key=key)
        except DataError as err:
            problems.append(f"config key {key}: {err}")
            continue
        if name in repair_on:
            unlabelled = [item["source"] for item in items if item["gold_label"] not in ("YES", "NO")]
            if unlabelled:
                problems.append(
                    f"config key {key}: a fine-tune is repaired on this set (repair_on), which needs a "
                    f"YES/NO gold on every item; {unlabelled[0]} has none ({len(unlabelled)} such lines)"
                )
    return problems
