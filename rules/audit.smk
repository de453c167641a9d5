# Stage II: every fine-tuned model's explanations against M0's on the audit split.


rule pair_answers:
    input:
        base=lambda w: f"{RESULTS}generate/{audit_base(w.model)}/{AUDIT_SPLIT}.binary.jsonl",
        tuned=f"{RESULTS}generate/{{model}}/{AUDIT_SPLIT}.binary.jsonl",
        split_items=f"{RESULTS}data/splits/{AUDIT_SPLIT}.jsonl",
        scorer=get_scorer_files,
    output:
        pairs=f"{RESULTS}audit/{{model}}/pairs.jsonl",
    log:
        f"{LOGS}audit/{{model}}/pairs.log",
    benchmark:
        f"{BENCHMARKS}audit/{{model}}/pairs.tsv"
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
        split_items=f"{RESULTS}data/splits/{AUDIT_SPLIT}.jsonl",
    output:
        check_pairs=f"{RESULTS}audit/check_pairs.jsonl",
    log:
        f"{LOGS}audit/check_pairs.log",
    priority: job_priority("judge_check")
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        check_set=config_slice("audit.check_set", keep=("per_kind", "seed")),
    script:
        "../scripts/build_check_pairs.py"


rule judge_check:
    input:
        check_pairs=f"{RESULTS}audit/check_pairs.jsonl",
        extra_pairs=config["audit"]["check_set"]["extra"],
        template="config/prompts/judge_drift.txt",
        model=get_judge_files,
    output:
        check=f"{RESULTS}audit/judge_check.json",
    log:
        f"{LOGS}audit/judge_check.log",
    benchmark:
        f"{BENCHMARKS}audit/judge_check.tsv"
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
        # The extra pairs come in as files (input.extra_pairs).
        check_set=config_slice("audit.check_set", keep=("n_boot", "seed")),
        cache_dir=config["cache_dir"],
        models_root=MODELS_ROOT,
    script:
        "../scripts/judge_check.py"


rule judge_pairs:
    input:
        pairs=f"{RESULTS}audit/{{model}}/pairs.jsonl",
        template="config/prompts/judge_drift.txt",
        model=get_judge_files,
    output:
        judgments=f"{RESULTS}audit/{{model}}/judgments.jsonl",
        usage=f"{RESULTS}audit/{{model}}/judge_usage.json",
    log:
        f"{LOGS}audit/{{model}}/judge.log",
    benchmark:
        f"{BENCHMARKS}audit/{{model}}/judge.tsv"
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
        models_root=MODELS_ROOT,
    script:
        "../scripts/judge_pairs.py"


rule audit_table:
    input:
        pairs=f"{RESULTS}audit/{{model}}/pairs.jsonl",
        judgments=f"{RESULTS}audit/{{model}}/judgments.jsonl",
    output:
        csv=report(
            f"{RESULTS}audit/{{model}}/audit.csv",
            caption="../report/audit_table.rst",
            category="Stage II audit",
            subcategory="{model}",
        ),
    log:
        f"{LOGS}audit/{{model}}/table.log",
    priority: job_priority("audit_path")
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    script:
        "../scripts/audit_table.py"


# The summary and figures take the judge's check-set result; the table above does not, so
# new check pairs re-run these and the tables, never the repair that reads audit.csv.
rule audit_summary:
    input:
        pairs=f"{RESULTS}audit/{{model}}/pairs.jsonl",
        judgments=f"{RESULTS}audit/{{model}}/judgments.jsonl",
        csv=f"{RESULTS}audit/{{model}}/audit.csv",
        check=f"{RESULTS}audit/judge_check.json",
    output:
        summary=f"{RESULTS}audit/{{model}}/summary.json",
        summary_md=report(
            f"{RESULTS}audit/{{model}}/summary.md",
            caption="../report/audit_summary.rst",
            category="Stage II audit",
            subcategory="{model}",
        ),
        deltas_png=report(
            f"{RESULTS}audit/{{model}}/score_deltas.png",
            caption="../report/audit_deltas.rst",
            category="Stage II audit",
            subcategory="{model}",
        ),
        deltas_pdf=f"{RESULTS}audit/{{model}}/score_deltas.pdf",
        counts_png=report(
            f"{RESULTS}audit/{{model}}/drift_counts.png",
            caption="../report/audit_counts.rst",
            category="Stage II audit",
            subcategory="{model}",
        ),
        counts_pdf=f"{RESULTS}audit/{{model}}/drift_counts.pdf",
    log:
        f"{LOGS}audit/{{model}}/summary.log",
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        split=AUDIT_SPLIT,
        protocol=PROTOCOL,
        audit=audit_summary_params(),
        bootstrap=config["evaluation"]["bootstrap"],
        base=lambda w: audit_base(w.model),
    script:
        "../scripts/audit_summary.py"
