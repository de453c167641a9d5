rule train_adapter:
    input:
        examples=lambda w: TRAINING_DATA[w.model],
        model=get_student_files,
        init_adapter_files=get_init_adapter_files,
    output:
        adapter=f"{RESULTS}adapters/{{model}}/adapter_model.safetensors",
        adapter_config=f"{RESULTS}adapters/{{model}}/adapter_config.json",
        train_config=f"{RESULTS}adapters/{{model}}/train_config.json",
        loss_csv=f"{RESULTS}adapters/{{model}}/loss.csv",
        loss_png=f"{RESULTS}adapters/{{model}}/loss.png",
    log:
        f"{LOGS}train/{{model}}.log",
    benchmark:
        f"{BENCHMARKS}train/{{model}}.tsv"
    priority: job_priority("audit_path")
    conda:
        "../envs/hf.yaml"
    # Half the cores, like every local model job, so it never waits for both to be free
    # (LOCAL_MODEL_JOBS_AT_ONCE).
    threads: model_threads(student_section())
    resources:
        mem_mb=request_of(train_request, "mem_mb"),
        runtime=request_of(train_request, "runtime"),
        gpu=gpu_request(student_section()),
    params:
        training=training_params,
        student=config["student"],
        load_path=student_load_path(),
        init_adapter=lambda w: get_init_adapter(w.model),
    script:
        "../scripts/train_adapter.py"
