"""Rule write_open_queries: the seeded, stratified sample of open-domain queries every model answers."""

from harmdrift.logs import setup_logging
from harmdrift.open_domain import write_query_split

setup_logging(snakemake.log[0])
write_query_split(
    snakemake.input.queries,
    snakemake.output[0],
    n=snakemake.params.n_queries,
    seed=snakemake.params.seed,
)
