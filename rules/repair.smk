# Stage III: safer rationales for the drift an audit confirmed, and the repair training
# set; plus the joint-training ablation's toxicity-weighted Stage I data.


rule write_repair_rationales:
    input:
        audit=lambda w: f"results/audit/{REPAIR_PARENT[w.model]}/audit.csv",
        pairs=lambda w: f"results/audit/{REPAIR_PARENT[w.model]}/pairs.jsonl",
        split_items=f"results/data/splits/{AUDIT_SPLIT}.jsonl",
        teacher_prompt="config/prompts/teacher_repair.txt",
        fix_prompt="config/prompts/teacher_fix.txt",
        student_prompt=config["prompts"]["binary"],
        model=get_teacher_files,
    output:
        rationales="results/repair/{model}/rationales.jsonl",
        dropped="results/repair/{model}/rationales.dropped.jsonl",
        summary="results/repair/{model}/rationales.summary.json",
        usage="results/repair/{model}/rationales.usage.json",
    log:
        "logs/repair/{model}/rationales.log",
    benchmark:
        "benchmarks/repair/{model}/rationales.tsv"
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
        distill=config["distill"],
        repair=config["repair"],
        screen=scorer_params(),
        cache_dir=config["cache_dir"],
    script:
        "../scripts/write_repair_rationales.py"


rule build_repair_set:
    input:
        repair_rationales="results/repair/{model}/rationales.jsonl",
        stage1=get_stage1_data,
    output:
        examples="results/repair/{model}/train.jsonl",
        summary="results/repair/{model}/train.summary.json",
    log:
        "logs/repair/{model}/train_set.log",
    priority: job_priority("audit_path")
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        repair=config["repair"],
    script:
        "../scripts/build_repair_set.py"


rule joint_weights:
    input:
        stage1="results/rationales/distill.jsonl",
    output:
        examples="results/joint/train.jsonl",
        summary="results/joint/train.summary.json",
    log:
        "logs/joint/weights.log",
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
