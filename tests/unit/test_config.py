"""Config: the shipped profiles validate, bad keys are named, dataclasses build from config."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from harmdrift.config import ConfigError, gen_params, hf_model_config, student_spec, validate_config
from harmdrift.data.splits import SplitConfig

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


def test_default_profile_is_valid_and_builds_every_dataclass():
    config = validate_config(merged(), SCHEMA)
    SplitConfig(**config["data"]["split"])
    for framing in config["evaluation"]["framings"]:
        params = gen_params(config["generation"], framing)
        assert params.max_new_tokens == config["generation"]["max_new_tokens"][framing]
    cfg = hf_model_config(config["student"], config["generation"], load_path="x")
    assert cfg.batch_size == config["generation"]["batch_size"]
    assert student_spec(config).kind == "embedded"


def later_stage_dataclasses(config: dict):
    """The Stage II-III dataclasses every profile must build (schema and code kept in step)."""
    from harmdrift.backends import BackendConfig
    from harmdrift.config import backend_config, judge_config
    from harmdrift.repair.config import RepairConfig
    from harmdrift.scorers.base import ScorerConfig

    audit = config["audit"]
    judge = judge_config(audit["judge"])
    backend = backend_config(audit["judge"]) if judge.backend != "none" else None
    assert backend is None or isinstance(backend, BackendConfig)
    return ScorerConfig.from_dict(audit["scorer"]), judge, RepairConfig.from_dict(config["repair"])


def test_default_profile_builds_the_later_stages():
    config = validate_config(merged(), SCHEMA)
    scorer, judge, repair = later_stage_dataclasses(config)
    assert scorer.kind == "embedded" and judge.backend == "hf" and repair.rounds == 1
    assert config["audit"]["split"] == "val"  # held out from test by default
    assert judge.params.temperature == config["audit"]["judge"]["temperature"]


def test_smoke_profile_is_valid():
    config = validate_config(merged("smoke.yaml"), SCHEMA)
    SplitConfig(**config["data"]["split"])
    later_stage_dataclasses(config)


def test_paper_profile_is_valid_and_uses_the_paper_split():
    config = validate_config(merged("paper.yaml"), SCHEMA)
    assert config["data"]["split"]["mode"] == "paper"
    assert student_spec(config).kind == "hub"
    assert config["generation"]["max_new_tokens"]["binary"] == 256
    scorer, judge, repair = later_stage_dataclasses(config)
    assert config["audit"]["split"] == "test"  # DART's transductive protocol
    assert scorer.kind == "hf" and judge.backend == "openai" and repair.mode == "oversample"


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
    assert config["generation"]["batch_size"] == 16
    assert config["evaluation"]["bootstrap"] == {"n_resamples": 2000, "seed": 0}


def test_misspelt_key_is_named():
    config = merged()
    config["generation"]["batch_sise"] = 4
    with pytest.raises(ConfigError, match=r"generation\.batch_sise"):
        validate_config(config, SCHEMA)


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


def test_4bit_on_cpu_is_rejected():
    config = merged("paper.yaml")
    config["student"].update(quantization="4bit", device="cpu")
    with pytest.raises(ConfigError, match="4bit"):
        validate_config(config, SCHEMA)


def test_missing_prompt_file_is_named():
    config = merged()
    config["prompts"]["mc"] = "config/prompts/nope.txt"
    with pytest.raises(ConfigError, match=r"prompts\.mc"):
        validate_config(config, SCHEMA)
