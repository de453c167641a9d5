"""Conda env files: every rule names one, each parses, and their pins agree with pyproject."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs += extra
    pins = {}
    for spec in specs:
        name, version = spec.split("==")
        pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def rule_blocks():
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        text = smk.read_text()
        for match in re.finditer(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", text, flags=re.S | re.M):
            yield smk.name, match.group(1), match.group(2)


def test_every_rule_has_a_log_and_a_conda_env_that_exists():
    rules = list(rule_blocks())
    assert rules, "no rules found"
    for smk, name, body in rules:
        assert "    log:" in body, f"{smk}: rule {name} has no log"
        env = re.search(r'conda:\n\s+"\.\./(envs/[\w.-]+\.yaml)"', body)
        assert env, f"{smk}: rule {name} has no conda env"
        assert (ROOT / env.group(1)).exists(), f"{smk}: rule {name} names missing {env.group(1)}"


def test_env_pins_agree_with_pyproject():
    pins = pyproject_pins()
    for env in sorted((ROOT / "envs").glob("*.yaml")):
        spec = yaml.safe_load(env.read_text())
        pip = [d for d in spec["dependencies"] if isinstance(d, dict)][0]["pip"]
        for requirement in pip:
            name, version = requirement.split("==")
            name = re.sub(r"\[.*\]", "", name).lower()
            assert pins.get(name) == version, (
                f"{env.name}: {requirement} disagrees with pyproject ({pins.get(name)})"
            )


def test_post_deploy_pins_agree_with_pyproject():
    pins = pyproject_pins()
    for script in (ROOT / "envs").glob("*.post-deploy.sh"):
        for name, version in re.findall(r"([\w-]+)==([\w.]+)", script.read_text()):
            assert pins.get(name.lower()) == version, f"{script.name}: {name}=={version}"
