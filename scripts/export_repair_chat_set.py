"""Rule export_repair_chat_set: an API fine-tune's repair set as chat-format JSONL for a provider."""

from harmdrift.core.logs import setup_logging
from harmdrift.finetune.rules import export_repair_chat_set

setup_logging(snakemake.log[0])
export_repair_chat_set(
    examples=snakemake.input.examples,
    chat=snakemake.output.chat,
    summary=snakemake.output.summary,
)
