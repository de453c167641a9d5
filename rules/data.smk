rule write_splits:
    input:
        data=expand(
            "{dir}/{bench}.jsonl",
            dir=config["data"]["dir"],
            bench=config["data"]["benchmarks"],
        ),
    output:
        splits=expand(f"{RESULTS}data/splits/{{split}}.jsonl", split=SPLITS),
        summary=f"{RESULTS}data/split_summary.csv",
        provenance=f"{RESULTS}data/splits/provenance.json",
    log:
        f"{LOGS}data/write_splits.log",
    priority: job_priority("stage1")
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        data=config["data"],
    script:
        "../scripts/write_splits.py"
