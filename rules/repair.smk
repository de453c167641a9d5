# Stage III: safer rationales for the drift an audit confirmed, and the repair training
# set; plus the joint-training ablation's toxicity-weighted Stage I data.


rule write_repair_rationales:
    input:
        audit=lambda w: f"{RESULTS}audit/{REPAIR_PARENT[w.model]}/audit.csv",
        pairs=lambda w: f"{RESULTS}audit/{REPAIR_PARENT[w.model]}/pairs.jsonl",
        split_items=f"{RESULTS}data/splits/{AUDIT_SPLIT}.jsonl",
        teacher_prompt="config/prompts/teacher_repair.txt",
        fix_prompt="config/prompts/teacher_fix.txt",
        student_prompt=config["prompts"]["binary"],
        model=get_teacher_files,
        scorer=get_scorer_files,
    output:
        rationales=f"{RESULTS}repair/{{model}}/rationales.jsonl",
        dropped=f"{RESULTS}repair/{{model}}/rationales.dropped.jsonl",
        summary=f"{RESULTS}repair/{{model}}/rationales.summary.json",
        usage=f"{RESULTS}repair/{{model}}/rationales.usage.json",
    log:
        f"{LOGS}repair/{{model}}/rationales.log",
    benchmark:
        f"{BENCHMARKS}repair/{{model}}/rationales.tsv"
    priority: job_priority("audit_path")
    conda:
        "../envs/hf.yaml"
    threads: model_threads(config["teacher"])
    resources:
        mem_mb=request_of(repair_request, "mem_mb"),
        runtime=request_of(repair_request, "runtime"),
        gpu=gpu_request(config["teacher"]),
        llm_api=1 if config["teacher"]["backend"] == "openai" else 0,
    params:
        teacher=config["teacher"],
        # Stage III's checks are Stage I's, with repair.max_fix_rounds as the fix budget;
        # repair.rounds only decides how many repair models exist.
        distill=config_slice("distill", drop=("predicted_label", "max_fix_rounds")),
        repair=config_slice("repair", drop=("rounds",)),
        screen=scorer_params(),
        cache_dir=config["cache_dir"],
        models_root=MODELS_ROOT,
    script:
        "../scripts/write_repair_rationales.py"


rule build_repair_set:
    input:
        repair_rationales=f"{RESULTS}repair/{{model}}/rationales.jsonl",
        stage1=get_stage1_data,
    output:
        examples=f"{RESULTS}repair/{{model}}/train.jsonl",
        summary=f"{RESULTS}repair/{{model}}/train.summary.json",
    log:
        f"{LOGS}repair/{{model}}/train_set.log",
    priority: job_priority("audit_path")
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        repair=config_slice("repair", drop=("rounds",)),
    script:
        "../scripts/build_repair_set.py"


rule joint_weights:
    input:
        stage1=f"{RESULTS}rationales/distill.jsonl",
        scorer=get_scorer_files,
    output:
        examples=f"{RESULTS}joint/train.jsonl",
        summary=f"{RESULTS}joint/train.summary.json",
    log:
        f"{LOGS}joint/weights.log",
    priority: job_priority("stage1")
    conda:
        "../envs/hf.yaml"
    threads: 1
    resources:
        mem_mb=request_of(joint_weights_request, "mem_mb"),
        runtime=request_of(joint_weights_request, "runtime"),
        gpu=gpu_request(scorer_section()),
    params:
        joint=config["joint"],
        screen=scorer_params(),
        cache_dir=config["cache_dir"],
    script:
        "../scripts/joint_weights.py"
