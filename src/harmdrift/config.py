"""Config validation, and turning config sections into the typed settings and back-ends that
the rule functions (``<stage>/rules.py``) hand to stage code.

This module and the rules modules are the only code that reads the config dict."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from harmdrift.audit.judge import JudgeConfig
from harmdrift.backends import BackendConfig, get_backend
from harmdrift.core.decoding import GenParams
from harmdrift.distill.checks import RationaleConfig
from harmdrift.lm.engine import HFModelConfig
from harmdrift.lm.refs import ModelSpec, parse_model_spec
from harmdrift.scorers import make_scorer
from harmdrift.scorers.base import ScorerConfig
from harmdrift.train.config import TrainConfig


def audit_scorer(scorer: dict, cache_dir: str | None):
    """The toxicity scorer an ``audit.scorer`` section describes (behind its cache), and its label."""
    cfg = ScorerConfig.from_dict(scorer)
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


def _key_path(parts) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def _fill_defaults(node: dict, schema: dict) -> None:
    """Insert schema defaults for absent keys, recursively, so code never guesses a default."""
    for key, sub in schema.get("properties", {}).items():
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if isinstance(node.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(node[key], sub)


def _describe(error) -> str:
    """Turn a jsonschema error into one line naming the config key."""
    where = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        keys = ", ".join(_key_path([*error.absolute_path, k]) for k in unknown)
        return f"unknown config key {keys}; allowed here: {', '.join(known)}"
    if error.validator == "required":
        return f"config section {where}: {error.message}"
    return f"config key {where}: {error.message}"


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
    if errors:
        lines = "\n  ".join(_describe(e) for e in errors)
        raise ConfigError(f"invalid configuration ({len(errors)} problem(s)):\n  {lines}")
    _fill_defaults(config, schema)
    check_config(config)
    return config


def check_config(config: dict) -> None:
    """Rules that span fields or touch the disk, which JSON Schema cannot say."""
    split = config["data"]["split"]
    if split["mode"] == "subsample" and "n_per_group" not in split:
        raise ConfigError("config key data.split.n_per_group is required when data.split.mode is subsample")
    try:
        spec = parse_model_spec(config["student"]["model"], key="student.model")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    teacher = config["teacher"]
    try:
        teacher_spec(config)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if teacher["backend"] == "openai" and not teacher.get("base_url"):
        raise ConfigError("config key teacher.base_url is required when teacher.backend is openai")
    try:
        rationale_config(config["distill"], "gold")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if config["student"]["quantization"] == "4bit" and config["student"]["device"] == "cpu":
        raise ConfigError("config key student.quantization: 4bit needs a GPU, but student.device is cpu")
    if spec.kind == "embedded" and config["student"]["quantization"] == "4bit":
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
        revision=model_section.get("revision"),
        adapter=adapter,
        dtype=model_section.get("dtype", "auto"),
        quantization=model_section.get("quantization", "none"),
        device=model_section.get("device", "auto"),
        batch_size=generation["batch_size"],
        sort_by_length=generation["sort_by_length"],
    )


def rationale_config(distill: dict, label_source: str):
    """The rationale checks of the ``distill`` section, for one label source."""

    return RationaleConfig(
        min_sentences=distill["min_sentences"],
        max_sentences=distill["max_sentences"],
        max_quote_chars=distill["max_quote_chars"],
        max_fix_rounds=distill["max_fix_rounds"],
        label_source=label_source,
        append_missing_conclusion=distill["append_missing_conclusion"],
    )


def backend_config(section: dict):
    """The chat back-end settings of a teacher/judge config section."""

    return BackendConfig(
        backend=section["backend"],
        model=section["model"],
        revision=section.get("revision"),
        dtype=section.get("dtype", "auto"),
        device=section.get("device", "auto"),
        quantization=section.get("quantization", "none"),
        batch_size=section.get("batch_size", 16),
        base_url=section.get("base_url"),
        api_key_env=section.get("api_key_env"),
        concurrency=section.get("concurrency", 16),
        max_retries=section.get("max_retries", 3),
        timeout_s=section.get("timeout_s", 60),
        price_prompt_per_mtok=section.get("price_prompt_per_mtok"),
        price_completion_per_mtok=section.get("price_completion_per_mtok"),
    )


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
    target = training["target_modules"]
    return TrainConfig(
        **{k: v for k, v in training.items() if k != "target_modules"},
        target_modules=target if isinstance(target, str) else tuple(target),
        dtype=student["dtype"],
        quantization=student["quantization"],
    )


def gen_params(generation: dict, framing: str) -> GenParams:
    """Decoding settings for one framing."""
    return GenParams(
        max_new_tokens=generation["max_new_tokens"][framing],
        temperature=generation["temperature"],
        top_p=generation["top_p"],
        seed=generation["seed"],
    )
