rule score_binary:
    input:
        answers=f"{RESULTS}generate/{{model}}/{EVAL_SPLIT}.binary.jsonl",
        reference=f"{RESULTS}generate/{vocab.BASE_MODEL}/{EVAL_SPLIT}.binary.jsonl",
    output:
        csv=report(
            f"{RESULTS}tables/metrics_{{model}}.csv",
            caption="../report/metrics.rst",
            category="Accuracy",
            subcategory="binary (DART)",
        ),
        md=f"{RESULTS}tables/metrics_{{model}}.md",
    log:
        f"{LOGS}evaluate/score_binary_{{model}}.log",
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        bootstrap=config["evaluation"]["bootstrap"],
    script:
        "../scripts/score_binary.py"


rule score_mc:
    input:
        answers=f"{RESULTS}generate/{{model}}/{EVAL_SPLIT}.mc.jsonl",
    output:
        csv=report(
            f"{RESULTS}tables/metrics_{{model}}_mc.csv",
            caption="../report/metrics_mc.rst",
            category="Accuracy",
            subcategory="3-way (original benchmark)",
        ),
        md=f"{RESULTS}tables/metrics_{{model}}_mc.md",
    log:
        f"{LOGS}evaluate/score_mc_{{model}}.log",
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        bootstrap=config["evaluation"]["bootstrap"],
    script:
        "../scripts/score_mc.py"
