rule write_rationales:
    input:
        split_items=f"{RESULTS}data/splits/train.jsonl",
        teacher_prompt="config/prompts/teacher_gold.txt",
        predict_prompt=lambda w: PREDICT_PROMPTS[w.source],
        fix_prompt="config/prompts/teacher_fix.txt",
        student_prompt=config["prompts"]["binary"],
        model=get_teacher_files,
    output:
        rationales=f"{RESULTS}rationales/{{source}}.jsonl",
        dropped=f"{RESULTS}rationales/{{source}}.dropped.jsonl",
        summary=f"{RESULTS}rationales/{{source}}.summary.json",
        usage=f"{RESULTS}rationales/{{source}}.usage.json",
    log:
        f"{LOGS}rationales/{{source}}.log",
    benchmark:
        f"{BENCHMARKS}rationales/{{source}}.tsv"
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
        # predicted_label only adds the predlabel set: it leaves this job alone.
        distill=config_slice("distill", drop=("predicted_label",)),
        label_source=lambda w: LABEL_SOURCES[w.source],
        cache_dir=config["cache_dir"],
        models_root=MODELS_ROOT,
    script:
        "../scripts/write_rationales.py"
