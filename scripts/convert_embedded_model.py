"""Rule convert_embedded_model: de-quantise a wheel-shipped GGUF model into a safetensors folder."""

from harmdrift.core.logs import setup_logging
from harmdrift.lm.rules import convert_embedded_model

setup_logging(snakemake.log[0])
convert_embedded_model(
    embedded=snakemake.wildcards.embedded,
    model_dir=snakemake.output.model_dir,
)
