"""Rule write_open_queries: the seeded, stratified sample of open-domain queries every model answers."""

from harmdrift.core.logs import setup_logging
from harmdrift.open_domain.rules import write_open_queries

setup_logging(snakemake.log[0])
write_open_queries(
    queries=snakemake.input.queries,
    selected=snakemake.output.selected,
    n_queries=snakemake.params.n_queries,
    seed=snakemake.params.seed,
)
