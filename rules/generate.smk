rule generate_answers:
    input:
        split_items=f"{RESULTS}data/splits/{{split}}.jsonl",
        template=lambda w: config["prompts"][w.framing],
        model=get_student_files,
        adapter_files=get_adapter_files,
        policy=policy_prompt,
    output:
        answers=f"{RESULTS}generate/{{model}}/{{split}}.{{framing}}.jsonl",
    log:
        f"{LOGS}generate/{{model}}/{{split}}.{{framing}}.log",
    benchmark:
        f"{BENCHMARKS}generate/{{model}}/{{split}}.{{framing}}.tsv"
    priority: generation_priority
    conda:
        "../envs/hf.yaml"
    # On a CPU two generation jobs run side by side, each on half the cores (measured:
    # 1.4x the work per second on 2 cores); on a GPU one job owns it (resources.smk).
    threads: model_threads(student_section())
    resources:
        mem_mb=request_of(generate_request, "mem_mb"),
        runtime=request_of(generate_request, "runtime"),
        gpu=gpu_request(student_section()),
    params:
        student=config["student"],
        load_path=student_load_path(),
        adapter=lambda w: get_adapter(w.model),
        generation=generation_params,
        cache_dir=config["cache_dir"],
        policy=lambda w: (policy_prompt(w) or [None])[0],
    script:
        "../scripts/generate_answers.py"
