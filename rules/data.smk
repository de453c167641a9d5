rule write_splits:
    input:
        data=expand(
            "{dir}/{bench}.jsonl",
            dir=config["data"]["dir"],
            bench=config["data"]["benchmarks"],
        ),
    output:
        splits=expand("results/data/splits/{split}.jsonl", split=SPLITS),
        summary="results/data/split_summary.csv",
        provenance="results/data/splits/provenance.json",
    log:
        "logs/data/write_splits.log",
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
