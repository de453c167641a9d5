"""Rule convert_embedded_model: de-quantise a wheel-shipped GGUF model into a safetensors folder."""

from harmdrift.logs import setup_logging
from harmdrift.models import convert_embedded_model

setup_logging(snakemake.log[0])
convert_embedded_model(snakemake.wildcards.embedded, snakemake.output[0])
