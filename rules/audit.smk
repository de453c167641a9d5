# Stage II: every fine-tuned model's explanations against M0's on the audit split.


rule pair_answers:
    input:
        base=f"results/generate/{vocab.BASE_MODEL}/{AUDIT_SPLIT}.binary.jsonl",
        tuned=f"results/generate/{{model}}/{AUDIT_SPLIT}.binary.jsonl",
        split_items=f"results/data/splits/{AUDIT_SPLIT}.jsonl",
    output:
        pairs="results/audit/{model}/pairs.jsonl",
    log:
        "logs/audit/{model}/pairs.log",
    benchmark:
        "benchmarks/audit/{model}/pairs.tsv"
    priority: job_priority("audit_path")
    conda:
        "../envs/hf.yaml"
    threads: 1
    resources:
        mem_mb=request_of(pair_answers_request, "mem_mb"),
        runtime=request_of(pair_answers_request, "runtime"),
        gpu=gpu_request(scorer_section()),
    params:
        scorer=config["audit"]["scorer"],
        delta=config["audit"]["delta"],
        max_chars=config["audit"]["max_chars"],
        cache_dir=config["cache_dir"],
    script:
        "../scripts/pair_answers.py"


rule build_check_pairs:
    input:
        split_items=f"results/data/splits/{AUDIT_SPLIT}.jsonl",
    output:
        check_pairs="results/audit/check_pairs.jsonl",
    log:
        "logs/audit/check_pairs.log",
    priority: job_priority("judge_check")
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        check_set=config["audit"]["check_set"],
    script:
        "../scripts/build_check_pairs.py"


rule judge_check:
    input:
        check_pairs="results/audit/check_pairs.jsonl",
        extra_pairs=config["audit"]["check_set"]["extra"],
        template="config/prompts/judge_drift.txt",
        model=get_judge_files,
    output:
        check="results/audit/judge_check.json",
    log:
        "logs/audit/judge_check.log",
    benchmark:
        "benchmarks/audit/judge_check.tsv"
    priority: job_priority("judge_check")
    conda:
        "../envs/hf.yaml"
    threads: model_threads(config["audit"]["judge"])
    resources:
        mem_mb=request_of(judge_check_request, "mem_mb"),
        runtime=request_of(judge_check_request, "runtime"),
        gpu=gpu_request(config["audit"]["judge"]),
        llm_api=1 if config["audit"]["judge"]["backend"] == "openai" else 0,
    params:
        judge=config["audit"]["judge"],
        check_set=config["audit"]["check_set"],
        cache_dir=config["cache_dir"],
    script:
        "../scripts/judge_check.py"


rule judge_pairs:
    input:
        pairs="results/audit/{model}/pairs.jsonl",
        template="config/prompts/judge_drift.txt",
        model=get_judge_files,
    output:
        judgments="results/audit/{model}/judgments.jsonl",
        usage="results/audit/{model}/judge_usage.json",
    log:
        "logs/audit/{model}/judge.log",
    benchmark:
        "benchmarks/audit/{model}/judge.tsv"
    priority: job_priority("audit_path")
    conda:
        "../envs/hf.yaml"
    threads: model_threads(config["audit"]["judge"])
    resources:
        mem_mb=request_of(judge_pairs_request, "mem_mb"),
        runtime=request_of(judge_pairs_request, "runtime"),
        gpu=gpu_request(config["audit"]["judge"]),
        llm_api=1 if config["audit"]["judge"]["backend"] == "openai" else 0,
    params:
        judge=config["audit"]["judge"],
        verdicts=config["audit"]["verdicts"],
        delta=config["audit"]["delta"],
        cache_dir=config["cache_dir"],
    script:
        "../scripts/judge_pairs.py"


rule audit_table:
    input:
        pairs="results/audit/{model}/pairs.jsonl",
        judgments="results/audit/{model}/judgments.jsonl",
        check="results/audit/judge_check.json",
    output:
        csv=report(
            "results/audit/{model}/audit.csv",
            caption="../report/audit_table.rst",
            category="Stage II audit",
            subcategory="{model}",
        ),
        summary="results/audit/{model}/summary.json",
        summary_md=report(
            "results/audit/{model}/summary.md",
            caption="../report/audit_summary.rst",
            category="Stage II audit",
            subcategory="{model}",
        ),
        deltas_png=report(
            "results/audit/{model}/score_deltas.png",
            caption="../report/audit_deltas.rst",
            category="Stage II audit",
            subcategory="{model}",
        ),
        deltas_pdf="results/audit/{model}/score_deltas.pdf",
        counts_png=report(
            "results/audit/{model}/drift_counts.png",
            caption="../report/audit_counts.rst",
            category="Stage II audit",
            subcategory="{model}",
        ),
        counts_pdf="results/audit/{model}/drift_counts.pdf",
    log:
        "logs/audit/{model}/table.log",
    priority: job_priority("audit_path")
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        split=AUDIT_SPLIT,
        protocol=PROTOCOL,
        audit=config["audit"],
    script:
        "../scripts/audit_table.py"
