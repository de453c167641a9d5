rule score_binary:
    input:
        answers=f"results/generate/{{model}}/{EVAL_SPLIT}.binary.jsonl",
        reference=f"results/generate/{vocab.BASE_MODEL}/{EVAL_SPLIT}.binary.jsonl",
    output:
        csv=report(
            "results/tables/metrics_{model}.csv",
            caption="../report/metrics.rst",
            category="Accuracy",
            subcategory="binary (DART)",
        ),
        md="results/tables/metrics_{model}.md",
    log:
        "logs/evaluate/score_binary_{model}.log",
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
        answers=f"results/generate/{{model}}/{EVAL_SPLIT}.mc.jsonl",
    output:
        csv=report(
            "results/tables/metrics_{model}_mc.csv",
            caption="../report/metrics_mc.rst",
            category="Accuracy",
            subcategory="3-way (original benchmark)",
        ),
        md="results/tables/metrics_{model}_mc.md",
    log:
        "logs/evaluate/score_mc_{model}.log",
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
