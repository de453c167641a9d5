"""Config checks that look past the schema before any job starts: numbers YAML read as text,
hub ids offline, API keys, 4-bit support and the files the config names; each names its key."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import yaml

from harmdrift.config import ConfigError, check_api_keys, validate_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "config" / "schema.yaml"
KEY = "HARMDRIFT_TEST_API_KEY"


@pytest.fixture(autouse=True)
def _environment(monkeypatch):
    """Run in the repository (config paths are relative to it), online, with no test key set."""
    monkeypatch.chdir(ROOT)
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", KEY):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("DEEPSEEK_API_KEY", "test-key")  # config/paper.yaml's


def profile(*overlays: str) -> dict:
    """config/config.yaml with overlays applied section by section, one level deep (enough for
    the shipped overlays' keys used here)."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    for name in overlays:
        extra = yaml.safe_load((ROOT / "config" / name).read_text(encoding="utf-8"))
        for section, values in extra.items():
            if isinstance(values, dict) and isinstance(config.get(section), dict):
                for key, value in values.items():
                    if isinstance(value, dict) and isinstance(config[section].get(key), dict):
                        config[section][key].update(value)
                    else:
                        config[section][key] = value
            else:
                config[section] = values
    return config


def problems_of(config: dict, **kwargs) -> list[str]:
    """The problem lines of the ConfigError a config raises."""
    with pytest.raises(ConfigError) as err:
        validate_config(config, SCHEMA, **kwargs)
    return str(err.value).splitlines()[1:]


# ---------------------------------------------------------------------------------------- ranges


@pytest.mark.parametrize("delta", [1.5, 1.0, 0, -0.2])
def test_delta_outside_the_open_unit_interval_is_named(delta):
    config = profile()
    config["audit"]["delta"] = delta
    (line,) = problems_of(config)
    assert line.strip().startswith("config key audit.delta: ")


def test_delta_inside_the_unit_interval_passes():
    config = profile()
    config["audit"]["delta"] = 0.5
    assert validate_config(config, SCHEMA)["audit"]["delta"] == 0.5


def test_list_items_are_named_with_their_index():
    config = profile()
    config["audit"]["check_set"]["extra"] = ["resources/judge_check/pairs.jsonl", ""]
    assert any("config key audit.check_set.extra[1]: " in line for line in problems_of(config))


# ------------------------------------------------------------------------- 1e-4 is text in YAML


@pytest.mark.parametrize(
    ("written", "hint"),
    [
        ("1e-4", "YAML reads 1e-4 as text; write 1.0e-4"),
        ("2E5", "YAML reads 2E5 as text; write 2.0e+5"),
        ("1.5e3", "YAML reads 1.5e3 as text; write 1.5e+3"),
        ("'0.0002'", "write 0.0002 without quotes"),
    ],
)
def test_a_number_yaml_read_as_text_gets_a_hint(written, hint):
    config = profile()
    value = yaml.safe_load(f"learning_rate: {written}")["learning_rate"]
    assert isinstance(value, str)  # the trap itself
    config["training"]["learning_rate"] = value
    (line,) = problems_of(config)
    assert line.strip() == f"config key training.learning_rate: {value!r} is a string: {hint}"
    # The spelling suggested is a number to YAML, the same one.
    suggested = hint.split("write ")[1].removesuffix(" without quotes")
    assert yaml.safe_load(f"v: {suggested}")["v"] == float(value)


def test_the_hint_reaches_number_or_null_keys_too():
    config = profile()
    config["audit"]["judge"]["price_prompt_per_mtok"] = "5e-1"
    (line,) = problems_of(config)
    assert "audit.judge.price_prompt_per_mtok: '5e-1' is a string: YAML reads 5e-1 as text" in line


def test_text_that_is_no_number_keeps_the_plain_type_error():
    config = profile()
    config["training"]["learning_rate"] = "fast"
    (line,) = problems_of(config)
    assert "is a string" not in line and "config key training.learning_rate: 'fast'" in line


# -------------------------------------------------------------------------- hub ids when offline


def cache_model(hub: Path, repo_id: str, revision: str = "main") -> None:
    """Lay out a hub cache entry the way huggingface_hub writes one (a ref and a snapshot)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = hub / f"models--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / revision).write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "config.json").write_text("{}")


PAPER_STUDENT = "meta-llama/Meta-Llama-3-8B-Instruct"
PAPER_SCORER = "s-nlp/roberta_toxicity_classifier"


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_offline_hub_ids_missing_from_the_cache_are_named(monkeypatch, tmp_path, value):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    lines = problems_of(profile("paper.yaml"))
    assert len(lines) == 2
    student, scorer = (line.strip() for line in lines)
    assert student.startswith(
        f"config key student.model: HF_HUB_OFFLINE is set, so nothing is downloaded, "
        f"but hub model {PAPER_STUDENT!r} (revision main) is not in the local"
    )
    assert f"hf download {PAPER_STUDENT} --revision main" in student
    assert "point student.model at a local model folder" in student
    assert (
        scorer.startswith("config key audit.scorer.model: HF_HUB_OFFLINE is set") and PAPER_SCORER in scorer
    )


def test_offline_hub_ids_in_the_cache_pass(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    cache_model(tmp_path / "hub", PAPER_STUDENT)
    cache_model(tmp_path / "hub", PAPER_SCORER)
    validate_config(profile("paper.yaml"), SCHEMA)


def test_offline_check_reads_hf_home_and_the_pinned_revision(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")  # huggingface_hub honours it too
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    cache_model(tmp_path / "hub", PAPER_STUDENT)  # main only
    cache_model(tmp_path / "hub", PAPER_SCORER)
    config = profile("paper.yaml")
    config["student"]["revision"] = "v2"
    (line,) = problems_of(config)
    assert "config key student.model: TRANSFORMERS_OFFLINE is set" in line
    assert f"{PAPER_STUDENT!r} (revision v2)" in line and str(tmp_path / "hub") in line


def test_offline_teacher_and_judge_hub_ids_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    config = profile()
    config["teacher"]["model"] = "org/teacher"
    config["audit"]["judge"]["model"] = "org/judge"
    lines = problems_of(config)
    assert [line.split(":")[0].strip() for line in lines] == [
        "config key teacher.model",
        "config key audit.judge.model",
    ]


def test_online_hub_ids_are_not_looked_up(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    validate_config(profile("paper.yaml"), SCHEMA)  # transformers downloads them in the job


# ---------------------------------------------------------------------------------- API keys


def openai_teacher() -> dict:
    config = profile()
    config["teacher"].update(backend="openai", base_url="http://127.0.0.1:8000/v1", api_key_env=KEY)
    return config


def test_an_unset_api_key_variable_is_an_error_naming_the_key():
    (line,) = problems_of(openai_teacher())
    assert line.strip().startswith(f"config key teacher.api_key_env: environment variable {KEY} is not set")
    assert "any placeholder works" in line and f"export {KEY}=local" in line


def test_an_empty_api_key_variable_counts_as_unset(monkeypatch):
    monkeypatch.setenv(KEY, "")
    assert "is not set" in problems_of(openai_teacher())[0]


def test_an_unset_api_key_variable_is_a_warning_on_a_dry_run(capsys):
    validate_config(openai_teacher(), SCHEMA, defer_api_keys=True)
    err = capsys.readouterr().err
    assert err.startswith(f"warning: config key teacher.api_key_env: environment variable {KEY} is not set")


def test_a_deferred_api_key_is_an_error_once_jobs_are_about_to_run(monkeypatch):
    """What the Snakefile's onstart asks after a parse that only warned."""
    config = validate_config(openai_teacher(), SCHEMA, defer_api_keys=True)
    with pytest.raises(ConfigError, match=f"teacher.api_key_env: environment variable {KEY} is not set"):
        check_api_keys(config)
    monkeypatch.setenv(KEY, "local")
    check_api_keys(config)


def test_a_set_api_key_variable_passes_quietly(monkeypatch, capsys):
    monkeypatch.setenv(KEY, "local")
    validate_config(openai_teacher(), SCHEMA)
    assert capsys.readouterr().err == ""


def test_the_judge_api_key_is_checked_too():
    config = profile()
    config["audit"]["judge"].update(backend="openai", base_url="https://example.org/v1", api_key_env=KEY)
    (line,) = problems_of(config)
    assert line.strip().startswith(f"config key audit.judge.api_key_env: environment variable {KEY}")


# ---------------------------------------------------------------------------------- 4-bit loading


def fake_bitsandbytes(monkeypatch, *, cuda_library: bool, devices=("cpu", "cuda")) -> None:
    module = types.ModuleType("bitsandbytes")
    module.__version__ = "0.50.2"
    module.supported_torch_devices = set(devices)
    module.cextension = types.SimpleNamespace(lib=types.SimpleNamespace(compiled_with_cuda=cuda_library))
    monkeypatch.setitem(sys.modules, "bitsandbytes", module)


def gpu(monkeypatch, available: bool) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: available)


def four_bit(device: str = "auto", name: str = "config.yaml") -> dict:
    config = profile(name)
    config["student"].update(quantization="4bit", device=device)
    return config


def test_4bit_of_the_embedded_student_on_the_cpu_passes(monkeypatch):
    """QLoRA on every machine: bitsandbytes (a core dependency) has CPU kernels."""
    gpu(monkeypatch, False)
    validate_config(four_bit("auto"), SCHEMA)
    validate_config(four_bit("cpu"), SCHEMA)


def test_4bit_without_bitsandbytes_is_named(monkeypatch):
    gpu(monkeypatch, False)
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails
    (line,) = problems_of(four_bit())
    assert line.strip().startswith("config key student.quantization: 4bit needs bitsandbytes, which cannot")


def test_4bit_on_a_device_bitsandbytes_has_no_kernels_for_is_named(monkeypatch):
    gpu(monkeypatch, False)
    fake_bitsandbytes(monkeypatch, cuda_library=True, devices=("cuda",))
    (line,) = problems_of(four_bit("cpu"))
    assert "config key student.quantization: bitsandbytes 0.50.2 has no 4-bit kernels for device cpu" in line


def test_4bit_on_cuda_is_left_to_the_gpu_node_on_a_machine_without_one(monkeypatch):
    """A login node validates the paper profile (4-bit on cuda) for jobs that run elsewhere."""
    gpu(monkeypatch, False)
    fake_bitsandbytes(monkeypatch, cuda_library=False)
    validate_config(four_bit("cuda", "paper.yaml"), SCHEMA)


def test_4bit_where_bitsandbytes_has_no_cuda_library_is_named(monkeypatch):
    gpu(monkeypatch, True)
    fake_bitsandbytes(monkeypatch, cuda_library=False)
    (line,) = problems_of(four_bit("auto", "paper.yaml"))
    assert "config key student.quantization: 4bit on cuda needs bitsandbytes' CUDA kernels" in line


def test_4bit_with_a_gpu_and_bitsandbytes_passes(monkeypatch):
    gpu(monkeypatch, True)
    fake_bitsandbytes(monkeypatch, cuda_library=True)
    validate_config(four_bit("cuda", "paper.yaml"), SCHEMA)


def test_4bit_of_a_local_teacher_and_judge_is_checked_too(monkeypatch):
    gpu(monkeypatch, False)
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    config = profile()
    config["teacher"]["model"] = "org/teacher"
    config["audit"]["judge"]["model"] = "org/judge"
    for section in (config["teacher"], config["audit"]["judge"]):
        section["quantization"] = "4bit"
    lines = problems_of(config)
    assert [line.split(":")[0].strip() for line in lines] == [
        "config key teacher.quantization",
        "config key audit.judge.quantization",
    ]


# ------------------------------------------------------------------------- files the config names


def test_a_missing_data_folder_is_named():
    config = profile()
    config["data"]["dir"] = "no/such/folder"
    assert problems_of(config) == ["  config key data.dir: data folder 'no/such/folder' not found"]


def test_a_missing_benchmark_file_is_named_with_its_index(tmp_path):
    (tmp_path / "D1.jsonl").write_text("")
    config = profile()
    config["data"].update(dir=str(tmp_path), benchmarks=["D1", "N2"])
    assert problems_of(config) == [
        f"  config key data.benchmarks[1]: benchmark file '{tmp_path}/N2.jsonl' not found"
    ]


@pytest.mark.parametrize(
    ("section", "key", "what"),
    [
        ("prompts", "open", "template file"),
        ("open_domain", "queries", "query file"),
        ("open_domain", "judge_prompt", "template file"),
    ],
)
def test_a_missing_file_is_named_with_its_key(section, key, what):
    config = profile()
    config[section][key] = "no/such/file.txt"
    assert problems_of(config) == [f"  config key {section}.{key}: {what} 'no/such/file.txt' not found"]


def test_a_missing_extra_pairs_file_is_named_with_its_index():
    config = profile()
    config["audit"]["check_set"]["extra"] = ["resources/judge_check/pairs.jsonl", "mine.jsonl"]
    assert problems_of(config) == ["  config key audit.check_set.extra[1]: pairs file 'mine.jsonl' not found"]


def test_a_missing_detoxify_checkpoint_is_named():
    config = profile()
    config["audit"]["scorer"].update(kind="detoxify", checkpoint="no/such.ckpt")
    assert problems_of(config) == [
        "  config key audit.scorer.checkpoint: checkpoint file 'no/such.ckpt' not found"
    ]


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda c: c["audit"]["judge"].update(model="./no/such/judge"), "audit.judge.model"),
        (lambda c: c["audit"]["scorer"].update(kind="hf", model="./no/such/scorer"), "audit.scorer.model"),
    ],
)
def test_a_missing_model_folder_is_named(change, key):
    config = profile()
    change(config)
    (line,) = problems_of(config)
    assert f"config key '{key}': model folder" in line and "does not exist" in line


def test_paths_are_relative_to_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    keys = [line.split(":")[0].strip() for line in problems_of(profile())]
    assert keys == [
        "config key data.dir",
        "config key prompts.binary",
        "config key prompts.mc",
        "config key prompts.open",
        "config key open_domain.queries",
        "config key open_domain.judge_prompt",
    ]


def test_problems_of_every_kind_come_together():
    config = openai_teacher()
    config["distill"].update(min_sentences=5, max_sentences=2)
    config["prompts"]["mc"] = "config/prompts/nope.txt"
    config["audit"]["check_set"]["extra"] = ["a.jsonl", "b.jsonl"]
    with pytest.raises(ConfigError, match=r"invalid configuration \(5 problem\(s\)\)") as err:
        validate_config(config, SCHEMA)
    text = str(err.value)
    for key in ("distill.min_sentences", "teacher.api_key_env", "prompts.mc", "extra[0]", "extra[1]"):
        assert key in text
