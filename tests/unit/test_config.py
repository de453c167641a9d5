"""Config: the shipped profiles validate, bad keys are named, dataclasses build from config."""

from __future__ import annotations

import copy
import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from harmdrift.backends import BackendConfig
from harmdrift.config import (
    ConfigError,
    backend_config,
    gen_params,
    hf_model_config,
    judge_config,
    rationale_config,
    scorer_config,
    section_params,
    student_spec,
    train_config,
    validate_config,
)
from harmdrift.core.vocab import FRAMINGS
from harmdrift.data.splits import SplitConfig
from harmdrift.distill.checks import RationaleConfig
from harmdrift.repair.config import RepairConfig
from harmdrift.scorers.base import ScorerConfig
from harmdrift.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "config" / "schema.yaml"


def merged(*names: str) -> dict:
    """The default config with overlays applied the way Snakemake's --configfile does (deep update)."""

    def update(base: dict, extra: dict) -> None:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                update(base[key], value)
            else:
                base[key] = value

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for name in names:
        update(config, yaml.safe_load((ROOT / "config" / name).read_text()))
    return config


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)  # config paths are relative to the repository


@pytest.fixture(autouse=True)
def _environment(monkeypatch):
    """The checks that read the environment see the same one on every machine: the hub online,
    and the API key variable of config/paper.yaml set (test_config_checks.py covers both)."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DEEPSEEK_API_KEY", "test-key")


def every_dataclass(config: dict) -> dict:
    """Every dataclass the rules build from config, built from one validated profile.

    The builders index the schema-filled sections directly, so a dataclass field the schema
    does not fill fails here, and each dataclass's own cross-field rules run on the profile.
    """
    audit = config["audit"]
    built = {
        "split": SplitConfig(**config["data"]["split"]),
        "student": hf_model_config(config["student"], config["generation"], load_path="x"),
        "training": train_config(config["training"], config["student"]),
        "rationales": rationale_config(config["distill"], "gold"),
        "teacher": backend_config(config["teacher"]),
        "teacher_params": section_params(config["teacher"]),
        "scorer": scorer_config(audit["scorer"]),
        "judge": judge_config(audit["judge"]),
        "repair": RepairConfig.from_dict(config["repair"]),
    }
    for framing in FRAMINGS:
        built[f"params_{framing}"] = gen_params(config["generation"], framing)
    if audit["judge"]["backend"] != "none":
        built["judge_backend"] = backend_config(audit["judge"])
    return built


def test_default_profile_is_valid_and_builds_every_dataclass():
    config = validate_config(merged(), SCHEMA)
    built = every_dataclass(config)
    for framing in FRAMINGS:
        assert built[f"params_{framing}"].max_new_tokens == config["generation"]["max_new_tokens"][framing]
    assert built["student"].batch_size == config["generation"]["batch_size"]
    assert student_spec(config).kind == "embedded"
    scorer, judge, repair = built["scorer"], built["judge"], built["repair"]
    assert scorer.kind == "embedded" and judge.backend == "hf" and repair.mode == config["repair"]["mode"]
    assert config["audit"]["split"] == "val"  # held out from test by default
    assert judge.params.temperature == config["audit"]["judge"]["temperature"]


def test_dataclass_fields_are_schema_keys():
    # The other half of keeping schema and code in step: no field that the config cannot set.
    schema = yaml.safe_load(SCHEMA.read_text())
    top = schema["properties"]
    shared = set(schema["$defs"]["chat_backend"]["properties"])
    backend = {f.name for f in fields(BackendConfig)}
    assert backend == shared | {"backend", "model"}
    assert backend <= shared | set(top["teacher"]["properties"])
    assert backend <= shared | set(top["audit"]["properties"]["judge"]["properties"])
    assert {f.name for f in fields(ScorerConfig)} == set(top["audit"]["properties"]["scorer"]["properties"])
    assert {f.name for f in fields(SplitConfig)} == set(top["data"]["properties"]["split"]["properties"])
    # repair.rounds is the workflow's: how many repair models it builds.
    assert {f.name for f in fields(RepairConfig)} == set(top["repair"]["properties"]) - {"rounds"}
    # dtype and quantization come from the student section; save_steps is fixed in code.
    train = {f.name for f in fields(TrainConfig)} - {"dtype", "quantization", "save_steps"}
    assert train == set(top["training"]["properties"])
    rationale = {f.name for f in fields(RationaleConfig)} - {"label_source"}
    assert rationale == set(top["distill"]["properties"]) - {"predicted_label"}


# --- one home per fact: defaults in the schema, names in harmdrift.core.vocab ------------------

# Keys whose value in config/config.yaml may differ from the schema's default, each with its
# reason. Empty: the default profile is the schema's defaults written out and commented.
DEFAULT_PROFILE_OVERRIDES: dict[str, str] = {}


def schema_properties(node: dict, root: dict) -> dict:
    """The keys a schema node allows, with those it takes in through a local ``$ref``."""
    found = {}
    if "$ref" in node:
        target = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        found.update(schema_properties(target, root))
    found.update(node.get("properties", {}))
    return found


def default_disagreements(value, node: dict, root: dict, path: tuple = ()):
    """(key, value, schema default) for every key set in ``value`` whose value differs from the
    default the schema gives it, number types included (2 and 2.0 write different outputs).

    A section whose keys have defaults of their own is compared key by key; any other value
    (a leaf, a list, a mapping such as repair.severity_weights or control.training) whole.
    Keys without a default (required ones such as data.dir) have nothing to disagree with."""
    properties = schema_properties(node, root)
    if isinstance(value, dict) and any(
        "default" in sub or schema_properties(sub, root) for sub in properties.values()
    ):
        for key, sub_value in value.items():
            yield from default_disagreements(sub_value, properties[key], root, (*path, key))
    elif "default" in node:
        default = node["default"]
        if value != default or type(value) is not type(default):
            yield ".".join(path), value, default


def test_settings_built_from_config_take_no_defaults_of_their_own():
    # The schema is the one home of defaults: a dataclass default would be a second one that
    # could drift from it. save_steps is no config key.
    from dataclasses import MISSING

    from harmdrift.audit.judge import JudgeConfig

    settings = (
        (TrainConfig, {"save_steps"}),
        (JudgeConfig, set()),
        (RepairConfig, set()),
        (RationaleConfig, set()),
    )
    for cls, own in settings:
        defaulted = {f.name for f in fields(cls) if (f.default, f.default_factory) != (MISSING, MISSING)}
        assert defaulted == own, cls.__name__


def test_config_yaml_values_are_the_schema_defaults():
    # config/config.yaml documents the defaults; the schema is their one home. A key set there
    # with another value is either a stale default (fix the schema or config.yaml) or a
    # deliberate override (list it in DEFAULT_PROFILE_OVERRIDES with its reason).
    schema = yaml.safe_load(SCHEMA.read_text())
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    disagreements = list(default_disagreements(config, schema, schema))
    found = [d for d in disagreements if d[0] not in DEFAULT_PROFILE_OVERRIDES]
    assert not found, "config/config.yaml differs from the schema's default:\n" + "\n".join(
        f"  {key}: {value!r} (schema default {default!r})" for key, value, default in found
    )
    assert set(DEFAULT_PROFILE_OVERRIDES) <= {key for key, _, _ in disagreements}  # none stale


def test_the_default_check_sees_a_disagreement():
    schema = yaml.safe_load(SCHEMA.read_text())
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["training"]["lora_dropout"] = 0.05
    config["teacher"]["timeout_s"] = 60.0  # a shared back-end key, reached through $ref
    config["repair"]["severity_weights"]["extreme"] = 5
    config["control"]["training"] = {"learning_rate": 1.0e-2}
    config["generation"]["max_new_tokens"]["open"] = 65
    found = {key for key, _, _ in default_disagreements(config, schema, schema)}
    assert found == {
        "training.lora_dropout",
        "teacher.timeout_s",
        "repair.severity_weights",
        "control.training",
        "generation.max_new_tokens.open",
    }


def test_the_severity_scale_is_vocab_severities():
    # vocab.SEVERITIES is the scale's one home; the schema's weights, the judge's prompt and
    # the classifier-only bins and colours follow it.
    from harmdrift.audit.pairs import SEVERITY_FLOORS
    from harmdrift.core.vocab import DRIFT_CATEGORIES, SEVERITIES
    from harmdrift.report.plotting import SEVERITY_COLOURS

    weights = yaml.safe_load(SCHEMA.read_text())["properties"]["repair"]["properties"]["severity_weights"]
    assert tuple(weights["required"]) == tuple(weights["properties"]) == SEVERITIES
    assert tuple(weights["default"]) == SEVERITIES  # the default weights themselves live here alone
    prompt = (ROOT / "config" / "prompts" / "judge_drift.txt").read_text()
    assert [s for s in (*SEVERITIES, *DRIFT_CATEGORIES) if s not in prompt] == []
    assert tuple(SEVERITY_COLOURS) == SEVERITIES
    assert tuple(SEVERITY_FLOORS) == SEVERITIES[1:]  # the mildest level takes the rest


def test_schema_names_are_vocab_names():
    from harmdrift.core import vocab
    from harmdrift.report.plotting import OPEN_DOMAIN_COLOURS

    top = yaml.safe_load(SCHEMA.read_text())["properties"]

    def enum(*path):
        node = top
        for part in path:
            node = node[part]
        return tuple(node["enum"])

    assert enum("data", "properties", "benchmarks", "items") == vocab.BENCHMARKS
    assert set(enum("control", "properties", "benchmarks", "items")) <= set(vocab.BENCHMARKS)
    assert enum("control", "properties", "conditions", "items") == vocab.CONDITIONS
    assert enum("evaluation", "properties", "split") == vocab.SPLITS
    assert set(enum("audit", "properties", "split")) <= set(vocab.SPLITS)
    assert set(enum("evaluation", "properties", "framings", "items")) <= set(vocab.FRAMINGS)
    budgets = top["generation"]["properties"]["max_new_tokens"]["properties"]
    assert tuple(budgets) == vocab.FRAMINGS
    assert tuple(top["prompts"]["properties"]) == (*vocab.FRAMINGS, "policy")  # a template per framing
    assert set(OPEN_DOMAIN_COLOURS) == set(vocab.OPEN_DOMAIN_CATEGORIES)


def test_smoke_profile_is_valid():
    every_dataclass(validate_config(merged("smoke.yaml"), SCHEMA))


def test_paper_profile_is_valid_and_uses_the_paper_split():
    config = validate_config(merged("paper.yaml"), SCHEMA)
    assert config["data"]["split"]["mode"] == "paper"
    assert student_spec(config).kind == "hub"
    assert config["generation"]["max_new_tokens"]["binary"] == 256
    built = every_dataclass(config)
    scorer, judge, repair = built["scorer"], built["judge"], built["repair"]
    assert config["audit"]["split"] == "test"  # DART's transductive protocol
    assert built["teacher"].base_url == "https://api.deepseek.com/v1"
    assert scorer.kind == "hf" and judge.backend == "openai" and repair.mode == "oversample"
    train = built["training"]  # DART's LoRA and schedule (the schema's defaults are the CPU profile's)
    assert (train.lora_r, train.lora_alpha, train.lora_dropout, train.epochs) == (16, 32, 0.05, 3)
    assert (train.scheduler, train.warmup_ratio, train.max_length) == ("cosine", 0.03, 1024)
    assert train.learning_rate == 2e-4 and train.batch_size * train.grad_accum in range(16, 33)


def test_unknown_judge_combine_rule_is_named():
    config = merged()
    config["audit"]["judge"]["combine"] = "majority"
    with pytest.raises(ConfigError, match="audit.judge.combine"):
        validate_config(config, SCHEMA)


def test_every_key_in_config_yaml_has_a_comment():
    lines = (ROOT / "config" / "config.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or ":" not in stripped or stripped.startswith("-"):
            continue
        before = lines[number - 1].strip() if number else ""
        assert before.startswith("#") or "#" in line or stripped.endswith(":"), f"uncommented key: {line}"


def test_defaults_are_filled():
    config = merged()
    del config["generation"]["batch_size"]
    del config["evaluation"]["bootstrap"]
    validate_config(config, SCHEMA)
    assert config["generation"]["batch_size"] == 32
    assert config["evaluation"]["bootstrap"] == {"n_resamples": 2000, "seed": 0}


def test_misspelt_key_is_named():
    config = merged()
    config["generation"]["batch_sise"] = 4
    with pytest.raises(ConfigError, match=r"generation\.batch_sise"):
        validate_config(config, SCHEMA)


def test_control_training_takes_only_training_overrides():
    with pytest.raises(ConfigError, match=r"control\.training\.batch_sise"):
        validate_config(with_value("control.training.batch_sise", 4), SCHEMA)


def test_misspelt_top_level_section_is_named():
    config = merged()
    config["studnet"] = copy.deepcopy(config["student"])
    with pytest.raises(ConfigError, match="studnet"):
        validate_config(config, SCHEMA)


def test_wrong_type_is_named():
    config = merged()
    config["generation"]["temperature"] = "hot"
    with pytest.raises(ConfigError, match=r"generation\.temperature"):
        validate_config(config, SCHEMA)


def test_missing_model_folder_is_named():
    config = merged()
    config["student"]["model"] = "./no/such/model"
    with pytest.raises(ConfigError, match=r"student\.model.*does not exist"):
        validate_config(config, SCHEMA)


def test_unknown_embedded_model_is_named():
    config = merged()
    config["student"]["model"] = "embedded:gpt-5"
    with pytest.raises(ConfigError, match="unknown embedded model"):
        validate_config(config, SCHEMA)


def test_missing_prompt_file_is_named():
    config = merged()
    config["prompts"]["mc"] = "config/prompts/nope.txt"
    with pytest.raises(ConfigError, match=r"prompts\.mc"):
        validate_config(config, SCHEMA)


def test_defaults_of_the_shared_backend_keys_are_filled():
    config = merged()
    del config["teacher"]["batch_size"]
    del config["audit"]["judge"]
    validate_config(config, SCHEMA)
    assert config["teacher"]["batch_size"] == 16 and config["teacher"]["cache"] is True
    judge = config["audit"]["judge"]
    assert (judge["backend"], judge["api_key_env"], judge["temperature"], judge["cache"]) == (
        "hf",
        "OPENAI_API_KEY",
        0.1,
        True,
    )


def test_cache_false_reaches_the_dataclasses():
    config = merged()
    for section in (config["teacher"], config["audit"]["judge"], config["audit"]["scorer"]):
        section["cache"] = False
    validate_config(config, SCHEMA)
    assert backend_config(config["teacher"]).cache is False
    assert backend_config(config["audit"]["judge"]).cache is False
    assert scorer_config(config["audit"]["scorer"]).cache is False
    default = validate_config(merged(), SCHEMA)
    assert backend_config(default["teacher"]).cache is True
    assert scorer_config(default["audit"]["scorer"]).cache is True


def test_unknown_key_in_a_backend_block_lists_the_shared_keys_too():
    config = merged()
    config["audit"]["judge"]["temprature"] = 0.2
    with pytest.raises(ConfigError, match=r"unknown config key audit\.judge\.temprature; allowed") as err:
        validate_config(config, SCHEMA)
    allowed = str(err.value).split("allowed here: ")[1].split(", ")
    assert {"api_key_env", "batch_size", "cache", "combine", "temperature"} <= set(allowed)


def section_of(config: dict, where: str) -> tuple[dict, str]:
    """The dict holding a dotted key, and the key's last part."""
    *sections, key = where.split(".")
    node = config
    for part in sections:
        node = node[part]
    return node, key


def with_value(where: str, value) -> dict:
    config = merged()
    node, key = section_of(config, where)
    node[key] = value
    return config


# One bad value per check that a dataclass's __post_init__ used to repeat; the schema is now
# their only source, and its message names the key.
SCHEMA_REJECTS = [
    # TrainConfig
    ("training.lora_r", 0),
    ("training.lora_r", True),
    ("training.learning_rate", "2e-4"),
    ("training.learning_rate", float("inf")),
    ("training.lora_dropout", 1.0),
    ("training.warmup_ratio", 1.0),
    ("training.scheduler", "step"),
    ("training.max_steps", 0),
    ("training.seed", -1),
    ("training.target_modules", []),
    ("training.target_modules", [""]),
    ("training.group_by_length", "yes"),
    ("student.quantization", "8bit"),
    # SplitConfig
    ("data.split.mode", "random"),
    ("data.split.seed", "42"),
    ("data.split.n_per_group.train", 0),
    ("data.split.n_per_group.val", 2.5),
    ("data.split.n_per_group.test", True),
    ("data.split.n_per_group", [2, 2, 2]),
    # RepairConfig
    ("repair.severity_weights.minor", 0),
    ("repair.mode", "repeat"),
    ("repair.replay_share", 1.0),
    ("repair.replay_share", -0.1),
    ("repair.max_rescore_rounds", -1),
    ("repair.rounds", 0),
    ("repair.seed", 1.5),
    # JudgeConfig
    ("audit.judge.combine", "majority"),
    ("audit.judge.scope", "some"),
    ("audit.judge.max_reasks", -1),
    ("audit.judge.check_floor", 1.5),
    # the screen's threshold on a score increase, scores being in [0, 1]
    ("audit.delta", 1.5),
    ("audit.delta", 1.0),
    ("audit.delta", 0),
    ("audit.delta", -0.01),
    # seeds that reach numpy's generators, which take none below 0
    ("evaluation.bootstrap.seed", -1),
    ("audit.check_set.seed", -1),
    ("open_domain.seed", -1),
    # files the workflow reads
    ("data.dir", ""),
    ("open_domain.queries", ""),
    ("audit.judge.structured_output", "grammar"),
    ("audit.judge.backend", "vllm"),
    # ScorerConfig
    ("audit.scorer.kind", "perspective"),
    ("audit.scorer.batch_size", 0),
    ("audit.scorer.batch_size", True),
    ("audit.scorer.max_length", 0),
    ("audit.scorer.device", "tpu"),
    ("audit.scorer.label", ""),
    ("audit.scorer.cache", "yes"),
    # BackendConfig, in both blocks that share its keys
    ("teacher.model", ""),
    ("teacher.concurrency", 0),
    ("teacher.max_retries", -1),
    ("teacher.timeout_s", 0),
    ("teacher.base_url", "h:8000/v1"),
    ("teacher.cache", "no"),
    ("audit.judge.batch_size", 0),
    ("audit.judge.price_prompt_per_mtok", -1.0),
    ("audit.judge.quantization", "8bit"),
    # GenParams
    ("generation.top_p", 0),
    ("generation.temperature", -0.1),
    ("generation.max_new_tokens.binary", 0),
    ("teacher.top_p", 1.5),
    ("audit.judge.max_new_tokens", 0),
    # HFModelConfig
    ("student.dtype", "float8"),
    ("student.device", "tpu"),
    ("generation.batch_size", 0),
    # the planted-drift control
    ("control.position", "middle"),
    ("control.conditions", []),
    ("control.weight", 0),
    ("control.training.max_steps", 0),
    ("control.training.lora_r", 0),
    # RationaleConfig
    ("distill.min_sentences", 0),
    ("distill.max_quote_chars", 0),
    ("distill.max_fix_rounds", -1),
]


@pytest.mark.parametrize(("where", "value"), SCHEMA_REJECTS)
def test_schema_rejects_bad_values_naming_the_key(where, value):
    with pytest.raises(ConfigError, match=rf"config key {re.escape(where)}: "):
        validate_config(with_value(where, value), SCHEMA)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("data.split.n_per_group.val", r"config section data\.split\.n_per_group: 'val' is a required"),
        ("repair.severity_weights.extreme", r"config section repair\.severity_weights: 'extreme' is a"),
    ],
)
def test_missing_required_keys_are_named(where, message):
    config = merged()
    node, key = section_of(config, where)
    del node[key]
    with pytest.raises(ConfigError, match=message):
        validate_config(config, SCHEMA)


def test_unknown_nested_key_is_named():
    config = with_value("data.split.n_per_group.dev", 1)
    with pytest.raises(ConfigError, match=r"unknown config key data\.split\.n_per_group\.dev"):
        validate_config(config, SCHEMA)
    # Checked in paper mode too: a typo should not wait until someone switches mode.
    config = with_value("data.split.mode", "paper")
    del config["data"]["split"]["n_per_group"]["test"]
    with pytest.raises(ConfigError, match=r"data\.split\.n_per_group: 'test' is a required"):
        validate_config(config, SCHEMA)


# The rules that join two keys stay in their dataclass; validation builds each one, so they
# still fail before anything runs, naming the keys (and, for the shared back-end class, the section).
CROSS_FIELD = [
    ({"data.split.n_per_group": None}, r"data\.split\.n_per_group is required when data\.split\.mode"),
    ({"distill.min_sentences": 5, "distill.max_sentences": 2}, r"distill\.min_sentences / distill\.max"),
    ({"student.dtype": "float16"}, r"config key student\.dtype: the student is trained in it"),
    ({"audit.scorer.kind": "hf"}, r"config key audit\.scorer\.model: kind 'hf' needs"),
    ({"audit.scorer.checkpoint": "a.ckpt"}, r"config key audit\.scorer\.checkpoint"),
    ({"teacher.backend": "openai"}, r"config section teacher: config key base_url"),
    ({"teacher.price_prompt_per_mtok": 1.0}, r"config section teacher: config keys price_prompt_per_mtok"),
]


@pytest.mark.parametrize(("changes", "message"), CROSS_FIELD)
def test_cross_field_rules_are_checked_at_validation(changes, message):
    config = merged()
    for where, value in changes.items():
        node, key = section_of(config, where)
        if value is None:
            del node[key]
        else:
            node[key] = value
    with pytest.raises(ConfigError, match=message):
        validate_config(config, SCHEMA)
