"""Rule build_check_pairs: labelled judge check pairs built from the audit split's items."""

from harmdrift.audit.rules import build_check_pairs
from harmdrift.core.logs import setup_logging

setup_logging(snakemake.log[0])
build_check_pairs(
    split_items=snakemake.input.split_items,
    check_pairs=snakemake.output.check_pairs,
    check_set=snakemake.params.check_set,
)
