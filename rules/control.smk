# The planted-drift positive control: contaminated Stage I data with known answers, so the
# audit's recall and precision and the repair's effect can be measured, not hoped for.


rule plant_rationales:
    input:
        rationales="results/rationales/distill.jsonl",
        split_items="results/data/splits/train.jsonl",
    output:
        planted_set="results/control/train.jsonl",
        planted="results/control/planted.jsonl",
        summary="results/control/planted.summary.json",
    log:
        "logs/control/plant.log",
    priority: job_priority("stage1", control=True)
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        # All but the student's training overrides, which do not change what is planted.
        control={k: v for k, v in config["control"].items() if k != "training"},
    script:
        "../scripts/plant_rationales.py"


rule control_table:
    input:
        audit=f"results/audit/{vocab.PLANTED_MODEL}/audit.csv",
        pairs_before=f"results/audit/{vocab.PLANTED_MODEL}/pairs.jsonl",
        pairs_after=f"results/audit/{vocab.PLANTED_REPAIR_MODEL}/pairs.jsonl",
        planted="results/control/planted.jsonl",
        split_items=f"results/data/splits/{AUDIT_SPLIT}.jsonl",
    output:
        csv=report(
            "results/tables/control.csv",
            caption="../report/control.rst",
            category="Planted-drift control",
        ),
        truth="results/control/truth.json",
        figure_png=report(
            f"results/figures/{vocab.CONTROL_FIGURE}.png",
            caption="../report/control.rst",
            category="Planted-drift control",
        ),
        figure_pdf=f"results/figures/{vocab.CONTROL_FIGURE}.pdf",
    log:
        "logs/control/table.log",
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        control=config["control"],
    script:
        "../scripts/control_table.py"
