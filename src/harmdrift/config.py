"""Config validation, and turning config sections into the typed settings and back-ends that
the rule functions (``<stage>/rules.py``) hand to stage code.

This module and the rules modules are the only code that reads the config dict."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import yaml

from harmdrift.audit.judge import JudgeConfig
from harmdrift.backends import BackendConfig, get_backend
from harmdrift.core.decoding import GenParams
from harmdrift.core.runtime import check_4bit
from harmdrift.data.splits import SplitConfig
from harmdrift.distill.checks import RationaleConfig
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
    return ".".join(str(p) for p in parts) or "<top level>"


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
    for key, sub in _properties(schema, root).items():
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if isinstance(node.get(key), dict):
            _fill_defaults(node[key], sub, root)


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
    if error.validator in ("anyOf", "oneOf") and "description" in error.schema:
        # jsonschema only says "not valid under any of the given schemas"; the key's own
        # description says what is allowed.
        return f"config key {where}: {error.instance!r} is not allowed; {error.schema['description']}"
    return f"config key {where}: {error.message}"


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


def validate_config(config: dict, schema_path: str | Path) -> dict:
    """Check a config against the schema and fill in defaults, in place.

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
        lines = "\n  ".join(problems)
        raise ConfigError(f"invalid configuration ({len(problems)} problem(s)):\n  {lines}")
    _fill_defaults(config, schema, schema)
    check_config(config)
    return config


@contextmanager
def _as_config_error(section: str = "") -> Iterator[None]:
    """Report a dataclass's ValueError as a ConfigError; ``section`` prefixes messages whose key
    is named within its section (the back-end settings)."""
    try:
        yield
    except ValueError as err:
        raise ConfigError(f"config section {section}: {err}" if section else str(err)) from None


def check_config(config: dict) -> None:
    """What JSON Schema cannot say: the rules that join keys (each dataclass's own, by building
    it from its section) and those that touch the disk."""
    student, audit = config["student"], config["audit"]
    with _as_config_error():
        SplitConfig(**config["data"]["split"])
        spec = student_spec(config)
        teacher_spec(config)
        check_4bit(student["quantization"], student["device"], key="student.quantization")
        train_config(config["training"], student)
        rationale_config(config["distill"], "gold")
        scorer_config(audit["scorer"])
    for name, section in (("teacher", config["teacher"]), ("audit.judge", audit["judge"])):
        if section["backend"] != "none":
            with _as_config_error(name):
                backend_config(section)
    if spec.kind == "embedded" and student["quantization"] == "4bit":
        raise ConfigError(
            "config key student.quantization: 4bit is for large hub/local models, not embedded ones"
        )
    for framing, path in config["prompts"].items():
        if not Path(path).is_file():
            raise ConfigError(f"config key prompts.{framing}: template file {path!r} not found")


def student_spec(config: dict) -> ModelSpec:
    return parse_model_spec(config["student"]["model"], key="student.model")


def teacher_spec(config: dict) -> ModelSpec | None:
    """The teacher's model reference when it runs locally (hf); None for an API teacher."""
    if config["teacher"]["backend"] != "hf":
        return None
    return parse_model_spec(config["teacher"]["model"], key="teacher.model")


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


def chat_backend(section: dict, cache_dir: str | None):
    """The chat back-end a teacher or judge section describes, behind the response cache."""
    return get_backend(backend_config(section), cache_dir)


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
