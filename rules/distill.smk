rule write_rationales:
    input:
        split_items="results/data/splits/train.jsonl",
        teacher_prompt="config/prompts/teacher_gold.txt",
        predict_prompt=lambda w: PREDICT_PROMPTS[w.source],
        fix_prompt="config/prompts/teacher_fix.txt",
        student_prompt=config["prompts"]["binary"],
        model=get_teacher_files,
    output:
        rationales="results/rationales/{source}.jsonl",
        dropped="results/rationales/{source}.dropped.jsonl",
        summary="results/rationales/{source}.summary.json",
        usage="results/rationales/{source}.usage.json",
    log:
        "logs/rationales/{source}.log",
    benchmark:
        "benchmarks/rationales/{source}.tsv"
    # Every fine-tuned model waits on the rationales, so they go first (resources.smk).
    priority: job_priority("stage1")
    conda:
        "../envs/hf.yaml"
    # A local CPU teacher takes half the cores (it decodes, like generate_answers), a model
    # job's CPUs on a cluster; an API teacher mostly waits on the network.
    threads: model_threads(config["teacher"])
    resources:
        mem_mb=request_of(rationales_request, "mem_mb"),
        runtime=request_of(rationales_request, "runtime"),
        gpu=gpu_request(config["teacher"]),
        llm_api=1 if config["teacher"]["backend"] == "openai" else 0,
    params:
        teacher=config["teacher"],
        distill=config["distill"],
        label_source=lambda w: LABEL_SOURCES[w.source],
        cache_dir=config["cache_dir"],
    script:
        "../scripts/write_rationales.py"
