"""Rule functions of the model layer (one per Snakemake rule, named after it)."""

from __future__ import annotations

from harmdrift.lm.convert import convert_embedded_model as convert


def convert_embedded_model(*, embedded: str, model_dir: str) -> dict:
    """Rule convert_embedded_model: de-quantise a wheel-shipped GGUF model into ``model_dir``."""
    return convert(embedded, model_dir)
