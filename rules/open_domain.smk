# Open-domain queries: every model answers the same sample; the judge sorts the answers.


rule write_open_queries:
    input:
        queries=config["open_domain"]["queries"],
    output:
        selected=f"{RESULTS}data/splits/open_domain.jsonl",
    log:
        f"{LOGS}open_domain/queries.log",
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        n_queries=config["open_domain"]["n_queries"],
        seed=config["open_domain"]["seed"],
    script:
        "../scripts/write_open_queries.py"


rule classify_open_answers:
    input:
        answers=f"{RESULTS}generate/{{model}}/open_domain.open.jsonl",
        queries=config["open_domain"]["queries"],
        template=config["open_domain"]["judge_prompt"],
        model=get_judge_files,
    output:
        classified=f"{RESULTS}open_domain/{{model}}.jsonl",
        rates=report(
            f"{RESULTS}open_domain/{{model}}.rates.csv",
            caption="../report/open_domain_rates.rst",
            category="Open-domain queries",
        ),
        usage=f"{RESULTS}open_domain/{{model}}.usage.json",
    log:
        f"{LOGS}open_domain/{{model}}.log",
    benchmark:
        f"{BENCHMARKS}open_domain/{{model}}.tsv"
    conda:
        "../envs/hf.yaml"
    threads: model_threads(config["audit"]["judge"])
    resources:
        mem_mb=request_of(classify_open_request, "mem_mb"),
        runtime=request_of(classify_open_request, "runtime"),
        gpu=gpu_request(config["audit"]["judge"]),
        llm_api=1 if config["audit"]["judge"]["backend"] == "openai" else 0,
    params:
        judge=open_judge_params(),
        verdicts=config["audit"]["verdicts"],
        bootstrap=config["evaluation"]["bootstrap"],
        cache_dir=config["cache_dir"],
        models_root=MODELS_ROOT,
    script:
        "../scripts/classify_open_answers.py"
