"""Config validation, and turning config sections into the typed settings and back-ends that
the rule functions (``<stage>/rules.py``) hand to stage code.

This module and the rules modules are the only code that reads the config dict."""

from __future__ import annotations

import copy
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import yaml

from harmdrift.audit.judge import JudgeConfig
from harmdrift.backends import BackendConfig, get_backend
from harmdrift.core import vocab
from harmdrift.core.decoding import GenParams
from harmdrift.core.runtime import check_4bit_support
from harmdrift.data.splits import SplitConfig
from harmdrift.distill.checks import RationaleConfig
from harmdrift.finetune.spec import check_finetunes
from harmdrift.lm.engine import HFModelConfig
from harmdrift.lm.refs import ModelSpec, parse_model_spec
from harmdrift.scorers import make_scorer
from harmdrift.scorers.base import ScorerConfig
from harmdrift.train.config import TrainConfig


def _from_section(cls, section: dict, **extra):
    """Build a settings dataclass from a schema-filled section, indexing every field the section
    sets, so a field the schema does not fill fails loudly instead of taking a silent default."""
    return cls(**{f.name: section[f.name] for f in fields(cls) if f.name not in extra}, **extra)


def scorer_config(scorer: dict) -> ScorerConfig:
    """The settings of an ``audit.scorer`` config section."""
    return _from_section(ScorerConfig, scorer)


def audit_scorer(scorer: dict, cache_dir: str | None):
    """The toxicity scorer an ``audit.scorer`` section describes (behind its cache), and its label."""
    cfg = scorer_config(scorer)
    return make_scorer(cfg, cache_dir), cfg.label


def judge_config(section: dict) -> JudgeConfig:
    """The judge settings of an ``audit.judge`` config section."""
    return JudgeConfig(
        backend=section["backend"],
        combine=section["combine"],
        scope=section["scope"],
        max_reasks=section["max_reasks"],
        check_floor=section["check_floor"],
        structured_output=section["structured_output"],
        calibrate=section["calibrate"],
        params=section_params(section),
    )


class ConfigError(ValueError):
    """A config value is missing, misspelt or out of range; the message names the key."""


# ---------------------------------------------------------------------------------------------
# Validation. config/schema.yaml holds every key's type, range, choices and default; the
# dataclasses hold the rules that join two keys. check_config builds each dataclass once, so
# those rules fail before the workflow starts, with the key named.


def _key_path(parts) -> str:
    """A config key as messages name it: ``audit.check_set.extra[0]``."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "<top level>"


def _ref_target(ref: str, root: dict) -> dict:
    """The schema node a local reference such as ``#/$defs/chat_backend`` points to."""
    node = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _properties(schema: dict, root: dict) -> dict:
    """The keys a schema node allows, with those it takes in through ``$ref`` and ``allOf``."""
    found: dict = {}
    if "$ref" in schema:
        found.update(_properties(_ref_target(schema["$ref"], root), root))
    for part in schema.get("allOf", []):
        found.update(_properties(part, root))
    found.update(schema.get("properties", {}))
    return found


def _fill_defaults(node: dict, schema: dict, root: dict) -> None:
    """Insert schema defaults for absent keys, recursively, so code never guesses a default."""
    known = _properties(schema, root)
    for key, sub in known.items():
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if isinstance(node.get(key), dict):
            _fill_defaults(node[key], sub, root)
    # Sections of named entries (prompt_sets, finetunes): each entry takes its schema's defaults.
    entry = schema.get("additionalProperties")
    if isinstance(entry, dict):
        for key, value in node.items():
            if key not in known and isinstance(value, dict):
                _fill_defaults(value, entry, root)


def _describe(error, root: dict) -> str:
    """Turn a jsonschema error into one line naming the config key."""
    where = _key_path(error.absolute_path)
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        known = sorted(_properties(error.schema, root))
        unknown = sorted(set(error.instance) - set(known))
        keys = ", ".join(_key_path([*error.absolute_path, k]) for k in unknown)
        return f"unknown config key {keys}; allowed here: {', '.join(known)}"
    if error.validator == "required":
        return f"config section {where}: {error.message}"
    if error.validator == "type" and isinstance(error.instance, str) and _takes_number(error.schema):
        hint = _number_text_hint(error.instance)
        if hint:
            return f"config key {where}: {error.instance!r} is a string: {hint}"
    if error.validator in ("anyOf", "oneOf") and "description" in error.schema:
        # jsonschema only says "not valid under any of the given schemas"; the key's own
        # description says what is allowed.
        return f"config key {where}: {error.instance!r} is not allowed; {error.schema['description']}"
    return f"config key {where}: {error.message}"


def _takes_number(schema: dict) -> bool:
    """Whether a schema node's type allows a number (``number``, or a list holding it)."""
    types = schema.get("type", [])
    return "number" in ([types] if isinstance(types, str) else types)


def _number_text_hint(text: str) -> str | None:
    """The fix for a string that is a number to Python but text to YAML (None when it is no
    number). PyYAML follows YAML 1.1, whose floats need a dot and a signed exponent: ``1e-4``
    and ``1.0e4`` stay text, ``1.0e-4`` and ``1.0e+4`` are numbers."""
    body = text.strip()
    try:
        if not math.isfinite(float(body)):
            return None
    except ValueError:
        return None
    if isinstance(yaml.safe_load(body), int | float):  # a number once unquoted
        return f"write {body} without quotes"
    mantissa, _, exponent = body.lower().partition("e")
    if exponent and "." not in mantissa:
        mantissa += ".0"
    if exponent and exponent[0] not in "+-":
        exponent = "+" + exponent
    spelling = f"{mantissa}e{exponent}" if exponent else mantissa
    if not isinstance(yaml.safe_load(spelling), float):
        return None
    return f"YAML reads {body} as text; write {spelling}"


def _non_finite_keys(node, path=()) -> Iterator[str]:
    # YAML can spell .inf and .nan, which JSON Schema's "number" lets through; no key here
    # means either.
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _non_finite_keys(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _non_finite_keys(value, (*path, index))
    elif isinstance(node, float) and not math.isfinite(node):
        yield _key_path(path)


def _problems_error(problems: list[str]) -> ConfigError:
    lines = "\n  ".join(problems)
    return ConfigError(f"invalid configuration ({len(problems)} problem(s)):\n  {lines}")


def validate_config(config: dict, schema_path: str | Path, *, defer_api_keys: bool = False) -> dict:
    """:func:`apply_schema`, then :func:`check_config` (the disk, the environment, the rules
    across sections).

    Args:
        defer_api_keys: an unset API key variable is only a warning here (the workflow parses its
            config before it knows whether jobs will run; it calls :func:`check_api_keys`
            once they are about to).

    Returns:
        The same dict, with defaults filled.

    Raises:
        ConfigError: listing every problem, each naming its key.
    """
    apply_schema(config, schema_path)
    check_config(config, defer_api_keys=defer_api_keys)
    return config


def apply_schema(config: dict, schema_path: str | Path) -> dict:
    """Check a config against the schema and fill in its defaults, in place (types, ranges
    and enums only: nothing on disk is looked at, so scripts outside the workflow can build
    settings from a profile, e.g. ``perf/bench_training.py``).

    Returns:
        The same dict, with defaults filled.

    Raises:
        ConfigError: listing every problem, each naming its key.
    """
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(e, schema) for e in errors]
    problems += [f"config key {key}: must be a finite number" for key in _non_finite_keys(config)]
    if problems:
        raise _problems_error(problems)
    _fill_defaults(config, schema, schema)
    return config


@contextmanager
def _noting(problems: list[str], section: str = "") -> Iterator[None]:
    """Note a ValueError (a dataclass's, a model reference's, a device's) as one problem and go
    on; ``section`` prefixes messages whose key is named within its section (the back-end
    settings)."""
    try:
        yield
    except ValueError as err:
        problems.append(f"config section {section}: {err}" if section else str(err))


def check_config(config: dict, *, defer_api_keys: bool = False) -> None:
    """What JSON Schema cannot say, every problem in one ConfigError: the rules that join keys
    (each dataclass's own, by building it from its section) and what only this machine can tell
    (files on disk, the hub cache when offline, API keys, 4-bit support).

    Args:
        defer_api_keys: an unset API key variable is then a warning on stderr, not a problem.
    """
    student, audit = config["student"], config["audit"]
    problems: list[str] = []
    with _noting(problems):
        SplitConfig(**config["data"]["split"])
    with _noting(problems):
        train_config(config["training"], student)
    with _noting(problems):
        rationale_config(config["distill"], "gold")
    with _noting(problems):
        scorer_config(audit["scorer"])
    # The models the pipeline loads itself: (section key, section, parsed reference).
    models: list[tuple[str, dict, ModelSpec]] = []
    for name, section, parse in (
        ("student", student, student_spec),
        ("teacher", config["teacher"], teacher_spec),
        ("audit.judge", audit["judge"], judge_spec),
    ):
        with _noting(problems):
            if (spec := parse(config)) is not None:
                models.append((name, section, spec))
    failed = set()
    for name, section in _chat_sections(config):
        before = len(problems)
        with _noting(problems, name):
            backend_config(section)
        if len(problems) > before:
            failed.add(name)
    for name, section in _api_sections(config):
        if (missing := _missing_api_key(name, section)) is not None:
            if defer_api_keys:
                print(f"warning: {missing} (a dry run sends no request, so it can wait)", file=sys.stderr)
            else:
                problems.append(missing)
    builtin = {*vocab.MODELS, *(vocab.repair_model(r) for r in range(1, 6))}
    problems += check_finetunes(config, builtin)
    for name, section, _spec in models:
        if name not in failed:  # else its own rules have named what is wrong
            _check_quantization(problems, name, section)
    hub = [(f"{name}.model", spec.ref, sec["revision"]) for name, sec, spec in models if spec.kind == "hub"]
    for name, entry in config["finetunes"].items():  # a local fine-tune's checkpoint and base
        for field, revision in (("model", "revision"), ("base", "base_revision")):
            if entry["backend"] == "hf" and entry[field] is not None:
                with _noting(problems):
                    if (
                        spec := parse_model_spec(entry[field], key=f"finetunes.{name}.{field}")
                    ).kind == "hub":
                        hub.append((f"finetunes.{name}.{field}", spec.ref, entry[revision]))
    scorer = audit["scorer"]
    if scorer["kind"] == "hf" and scorer["model"] is not None:
        with _noting(problems):  # a hub id or a folder, as the models above
            if (spec := parse_model_spec(scorer["model"], key="audit.scorer.model")).kind == "hub":
                hub.append(("audit.scorer.model", spec.ref, None))
    problems += _uncached_hub_models(hub)
    problems += _missing_files(config)
    if problems:
        raise _problems_error(problems)


def _chat_sections(config: dict) -> list[tuple[str, dict]]:
    """The teacher and judge sections that reach a back-end (the judge may be none)."""
    sections = [("teacher", config["teacher"]), ("audit.judge", config["audit"]["judge"])]
    return [(name, section) for name, section in sections if section["backend"] != "none"]


def _api_sections(config: dict) -> list[tuple[str, dict]]:
    """Every section that sends requests with a key: the teacher, the judge, API fine-tunes."""
    finetunes = [(f"finetunes.{name}", entry) for name, entry in config["finetunes"].items()]
    return [*_chat_sections(config), *finetunes]


def _missing_api_key(name: str, section: dict) -> str | None:
    """What is wrong when an API section's key variable is unset (None when it is set): the first
    API job would fail at its first request."""
    variable = section["api_key_env"]
    if section["backend"] != "openai" or os.environ.get(variable):
        return None
    return (
        f"config key {name}.api_key_env: environment variable {variable} is not set; export it "
        "before the run (the key itself never goes in config). A server that checks no key (e.g. "
        "a local transformers serve at base_url) still needs a value, and any placeholder works: "
        f"export {variable}=local"
    )


def check_api_keys(config: dict) -> None:
    """Fail before any job starts when a teacher, judge or fine-tune API key variable is unset.

    Raises:
        ConfigError: naming each key whose variable is unset.
    """
    problems = [p for name, sec in _api_sections(config) if (p := _missing_api_key(name, sec))]
    if problems:
        raise _problems_error(problems)


def _check_quantization(problems: list[str], name: str, section: dict) -> None:
    """4bit fails here rather than in the first model job where this machine cannot load NF4
    weights on the configured device (no bitsandbytes, or no kernels for it)."""
    with _noting(problems):
        check_4bit_support(section["quantization"], section["device"], key=f"{name}.quantization")


# What huggingface_hub reads as true (its constants.ENV_VARS_TRUE_VALUES).
_TRUE = ("1", "true", "yes", "on")


def _offline_variable() -> str | None:
    """The variable that keeps huggingface_hub offline (it reads both), or None when online."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in _TRUE:
            return variable
    return None


def _hub_cache_dir() -> str:
    """The hub cache as huggingface_hub finds it: HF_HUB_CACHE, else HF_HOME/hub, else
    ~/.cache/huggingface/hub. Read from the environment now: huggingface_hub fixes its own
    copy when first imported."""
    env = os.environ
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    home = os.path.expandvars(os.path.expanduser(home))
    cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return os.path.expandvars(os.path.expanduser(cache))


def _uncached_hub_models(hub: list[tuple[str, str, str | None]]) -> list[str]:
    """Offline, a hub id loads from the local cache or not at all: one problem for each of
    ``hub`` (config key, hub id, revision) that is not there, naming all three."""
    variable = _offline_variable()
    if variable is None or not hub:
        return []
    from huggingface_hub import try_to_load_from_cache

    cache = _hub_cache_dir()
    problems = []
    for key, repo_id, revision in hub:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache, revision=revision)
        if isinstance(found, str):
            continue
        revision = revision or "main"
        problems.append(
            f"config key {key}: {variable} is set, so nothing is downloaded, but hub model "
            f"{repo_id!r} (revision {revision}) is not in the local Hugging Face cache {cache}; "
            f"download it once with network (hf download {repo_id} --revision {revision}), or "
            f"point {key} at a local model folder"
        )
    return problems


def _missing_files(config: dict) -> list[str]:
    """Every file or folder the config names for the workflow to read that is not there,
    relative to the working directory (Snakemake's), each named by its key."""
    missing = []
    data_dir = config["data"]["dir"]
    if not Path(data_dir).is_dir():
        missing.append(f"config key data.dir: data folder {data_dir!r} not found")
    else:
        for index, benchmark in enumerate(config["data"]["benchmarks"]):
            path = f"{data_dir}/{benchmark}.jsonl"  # as rule write_splits names it
            if not Path(path).is_file():
                missing.append(f"config key data.benchmarks[{index}]: benchmark file {path!r} not found")
    # Every run writes the open-domain rates and the judge's check (rules classify_open_answers
    # and judge_check take these files as inputs whatever the judge's back-end).
    # The explanation policy's prompt only when a policy row will read it.
    unused = {"policy"} if config["evaluation"]["policy"] == "off" else set()
    files = [
        (f"prompts.{key}", "template file", path)
        for key, path in config["prompts"].items()
        if key not in unused
    ]
    files += [
        ("open_domain.queries", "query file", config["open_domain"]["queries"]),
        ("open_domain.judge_prompt", "template file", config["open_domain"]["judge_prompt"]),
    ]
    extra = config["audit"]["check_set"]["extra"]
    files += [(f"audit.check_set.extra[{i}]", "pairs file", path) for i, path in enumerate(extra)]
    scorer = config["audit"]["scorer"]
    if scorer["kind"] == "detoxify" and scorer["checkpoint"] is not None:
        # Read by the scorer itself, which expands ~ as well.
        files.append(("audit.scorer.checkpoint", "checkpoint file", scorer["checkpoint"]))
    for key, what, path in files:
        local = Path(path).expanduser() if key == "audit.scorer.checkpoint" else Path(path)
        if not local.is_file():
            missing.append(f"config key {key}: {what} {path!r} not found")
    return missing


def student_spec(config: dict) -> ModelSpec:
    return parse_model_spec(config["student"]["model"], key="student.model")


def teacher_spec(config: dict) -> ModelSpec | None:
    """The teacher's model reference when it runs locally (hf); None for an API teacher."""
    if config["teacher"]["backend"] != "hf":
        return None
    return parse_model_spec(config["teacher"]["model"], key="teacher.model")


def judge_spec(config: dict) -> ModelSpec | None:
    """The judge's model reference when it runs locally (hf); None for an API judge or none."""
    if config["audit"]["judge"]["backend"] != "hf":
        return None
    return parse_model_spec(config["audit"]["judge"]["model"], key="audit.judge.model")


def hf_model_config(
    model_section: dict, generation: dict, *, load_path: str, adapter: str | None = None
) -> HFModelConfig:
    """Build the loader settings for a model section (student, later teacher/judge)."""
    return HFModelConfig(
        model=load_path,
        revision=model_section["revision"],
        adapter=adapter,
        dtype=model_section["dtype"],
        quantization=model_section["quantization"],
        device=model_section["device"],
        batch_size=generation["batch_size"],
        sort_by_length=generation["sort_by_length"],
    )


def rationale_config(distill: dict, label_source: str) -> RationaleConfig:
    """The rationale checks of the ``distill`` section, for one label source."""
    return _from_section(RationaleConfig, distill, label_source=label_source)


def backend_config(section: dict) -> BackendConfig:
    """The chat back-end settings of a teacher/judge config section (``$defs/chat_backend``)."""
    return _from_section(BackendConfig, section)


def section_params(section: dict) -> GenParams:
    """The decoding settings of a teacher or judge config section."""
    return GenParams(
        max_new_tokens=section["max_new_tokens"],
        temperature=section["temperature"],
        top_p=section["top_p"],
        seed=section["seed"],
    )


def chat_backend(section: dict, cache_dir: str | None, models_root: str | None = None):
    """The chat back-end a teacher or judge section describes, behind the response cache
    (``models_root``: the run's converted embedded models, for a local back-end)."""
    return get_backend(backend_config(section), cache_dir, models_root=models_root)


def train_config(training: dict, student: dict) -> TrainConfig:
    """The training settings: the ``training`` section plus the student's dtype and quantization
    (so QLoRA is simply ``student.quantization: 4bit``)."""
    return TrainConfig(**training, dtype=student["dtype"], quantization=student["quantization"])


def gen_params(generation: dict, framing: str) -> GenParams:
    """Decoding settings for one framing."""
    return GenParams(
        max_new_tokens=generation["max_new_tokens"][framing],
        temperature=generation["temperature"],
        top_p=generation["top_p"],
        seed=generation["seed"],
    )
