# The planted-drift positive control: contaminated Stage I data with known answers, so the
# audit's recall and precision and the repair's effect can be measured, not hoped for.


rule plant_rationales:
    input:
        rationales=f"{RESULTS}rationales/distill.jsonl",
        split_items=f"{RESULTS}data/splits/train.jsonl",
    output:
        planted_set=f"{RESULTS}control/train.jsonl",
        planted=f"{RESULTS}control/planted.jsonl",
        summary=f"{RESULTS}control/planted.summary.json",
    log:
        f"{LOGS}control/plant.log",
    priority: job_priority("stage1", control=True)
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        # All but the student's training overrides, which do not change what is planted.
        control=config_slice(
            "control",
            keep=("share", "seed", "benchmarks", "position", "conditions", "weight"),
        ),
    script:
        "../scripts/plant_rationales.py"


rule control_table:
    input:
        audit=f"{RESULTS}audit/{vocab.PLANTED_MODEL}/audit.csv",
        pairs_before=f"{RESULTS}audit/{vocab.PLANTED_MODEL}/pairs.jsonl",
        pairs_after=f"{RESULTS}audit/{vocab.PLANTED_REPAIR_MODEL}/pairs.jsonl",
        planted=f"{RESULTS}control/planted.jsonl",
        split_items=f"{RESULTS}data/splits/{AUDIT_SPLIT}.jsonl",
    output:
        csv=report(
            f"{RESULTS}tables/control.csv",
            caption="../report/control.rst",
            category="Planted-drift control",
        ),
        truth=f"{RESULTS}control/truth.json",
        figure_png=report(
            f"{RESULTS}figures/{vocab.CONTROL_FIGURE}.png",
            caption="../report/control.rst",
            category="Planted-drift control",
        ),
        figure_pdf=f"{RESULTS}figures/{vocab.CONTROL_FIGURE}.pdf",
    log:
        f"{LOGS}control/table.log",
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        control=config_slice("control", keep=("ngram", "min_overlap")),
    script:
        "../scripts/control_table.py"
