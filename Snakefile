# harm-drift / DART pipeline. Run `snakemake --cores all`; see README.md.
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


configfile: Path(workflow.basedir) / "config" / "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/resources.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/distill.smk"
include: "rules/train.smk"
include: "rules/generate.smk"
include: "rules/evaluate.smk"
include: "rules/audit.smk"
include: "rules/repair.smk"
include: "rules/open_domain.smk"
include: "rules/control.smk"
include: "rules/finetune.smk"
include: "rules/report.smk"


onstart:
    # A real run (not a dry run): the API keys the config names must be set now.
    check_api_keys(config)


rule all:
    default_target: True
    input:
        get_final_outputs(),


# The fine-tune audits and repairs alone (config finetunes), and what they need:
# snakemake --cores all finetunes --configfile config/finetune-example.yaml
rule finetunes:
    input:
        finetune_outputs(),
