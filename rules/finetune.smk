# Audit your own fine-tune: every model under `finetunes:` against its base on its prompt
# sets (Stage II's pairing, screen, judge and summary), and Stage III on its drift.
# Outputs: results/<run>/prompt_sets/<set>.jsonl and results/<run>/finetunes/<name>/...


rule write_finetune_prompts:
    input:
        source=prompt_set_files,
    output:
        prompts=f"{RESULTS}prompt_sets/{{pset}}.jsonl",
    log:
        f"{LOGS}finetunes/prompt_sets/{{pset}}.log",
    wildcard_constraints:
        pset="|".join(PROMPT_SET_NAMES),
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        source=prompt_set_source,
        entry=lambda w: PROMPT_SETS[w.pset],
    script:
        "../scripts/write_finetune_prompts.py"


rule finetune_answers:
    input:
        prompts=f"{RESULTS}prompt_sets/{{pset}}.jsonl",
        template=prompt_set_template,
        model=finetune_side_files,
    output:
        answers=f"{FINETUNE_DIR}{{model}}/{{pset}}/{{side}}.jsonl",
    log:
        f"{LOGS}finetunes/{{model}}/{{pset}}/{{side}}.log",
    benchmark:
        f"{BENCHMARKS}finetunes/{{model}}/{{pset}}/{{side}}.tsv"
    wildcard_constraints:
        model="|".join(FT_NAMES),
        pset="|".join(PROMPT_SET_NAMES),
        side="base|tuned",
    conda:
        "../envs/hf.yaml"
    threads: lambda w: model_threads(finetune_section(w))
    resources:
        mem_mb=request_of(finetune_answers_request, "mem_mb"),
        runtime=request_of(finetune_answers_request, "runtime"),
        gpu=lambda w: gpu_request(finetune_section(w)),
        llm_api=lambda w: 0 if FINETUNES[w.model].local else 1,
    params:
        side=lambda w: finetune_side(w.model, w.side),
        framing=lambda w: framing_for(PROMPT_SETS[w.pset]),
        generation=config["generation"],
        cache_dir=config["cache_dir"],
    script:
        "../scripts/finetune_answers.py"


rule finetune_pairs:
    input:
        base=lambda w: base_answers(w.model, w.pset),
        tuned=f"{FINETUNE_DIR}{{model}}/{{pset}}/tuned.jsonl",
        split_items=f"{RESULTS}prompt_sets/{{pset}}.jsonl",
        scorer=get_scorer_files,
    output:
        pairs=f"{FINETUNE_DIR}{{model}}/{{pset}}/pairs.jsonl",
    log:
        f"{LOGS}finetunes/{{model}}/{{pset}}/pairs.log",
    wildcard_constraints:
        model="|".join(FT_NAMES),
        pset="|".join(PROMPT_SET_NAMES),
    conda:
        "../envs/hf.yaml"
    threads: 1
    resources:
        mem_mb=request_of(finetune_pairs_request, "mem_mb"),
        runtime=request_of(finetune_pairs_request, "runtime"),
        gpu=gpu_request(scorer_section()),
    params:
        scorer=config["audit"]["scorer"],
        delta=config["audit"]["delta"],
        max_chars=config["audit"]["max_chars"],
        cache_dir=config["cache_dir"],
    script:
        "../scripts/pair_answers.py"


rule finetune_judge:
    input:
        pairs=f"{FINETUNE_DIR}{{model}}/{{pset}}/pairs.jsonl",
        template="config/prompts/judge_drift.txt",
        model=get_judge_files,
    output:
        judgments=f"{FINETUNE_DIR}{{model}}/{{pset}}/judgments.jsonl",
        usage=f"{FINETUNE_DIR}{{model}}/{{pset}}/judge_usage.json",
    log:
        f"{LOGS}finetunes/{{model}}/{{pset}}/judge.log",
    wildcard_constraints:
        model="|".join(FT_NAMES),
        pset="|".join(PROMPT_SET_NAMES),
    conda:
        "../envs/hf.yaml"
    threads: model_threads(config["audit"]["judge"])
    resources:
        mem_mb=request_of(finetune_judge_request, "mem_mb"),
        runtime=request_of(finetune_judge_request, "runtime"),
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


rule finetune_table:
    input:
        pairs=f"{FINETUNE_DIR}{{model}}/{{pset}}/pairs.jsonl",
        judgments=f"{FINETUNE_DIR}{{model}}/{{pset}}/judgments.jsonl",
    output:
        csv=report(
            f"{FINETUNE_DIR}{{model}}/{{pset}}/audit.csv",
            caption="../report/finetune_table.rst",
            category="Fine-tune audits",
            subcategory="{model} on {pset}",
        ),
    log:
        f"{LOGS}finetunes/{{model}}/{{pset}}/table.log",
    wildcard_constraints:
        model="|".join(FT_NAMES),
        pset="|".join(PROMPT_SET_NAMES),
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    script:
        "../scripts/audit_table.py"


rule finetune_summary:
    input:
        pairs=f"{FINETUNE_DIR}{{model}}/{{pset}}/pairs.jsonl",
        judgments=f"{FINETUNE_DIR}{{model}}/{{pset}}/judgments.jsonl",
        csv=f"{FINETUNE_DIR}{{model}}/{{pset}}/audit.csv",
        check=f"{RESULTS}audit/judge_check.json",
    output:
        summary=f"{FINETUNE_DIR}{{model}}/{{pset}}/summary.json",
        summary_md=report(
            f"{FINETUNE_DIR}{{model}}/{{pset}}/summary.md",
            caption="../report/finetune_summary.rst",
            category="Fine-tune audits",
            subcategory="{model} on {pset}",
        ),
        deltas_png=report(
            f"{FINETUNE_DIR}{{model}}/{{pset}}/score_deltas.png",
            caption="../report/finetune_figures.rst",
            category="Fine-tune audits",
            subcategory="{model} on {pset}",
        ),
        deltas_pdf=f"{FINETUNE_DIR}{{model}}/{{pset}}/score_deltas.pdf",
        counts_png=report(
            f"{FINETUNE_DIR}{{model}}/{{pset}}/drift_counts.png",
            caption="../report/finetune_figures.rst",
            category="Fine-tune audits",
            subcategory="{model} on {pset}",
        ),
        counts_pdf=f"{FINETUNE_DIR}{{model}}/{{pset}}/drift_counts.pdf",
    log:
        f"{LOGS}finetunes/{{model}}/{{pset}}/summary.log",
    wildcard_constraints:
        model="|".join(FT_NAMES),
        pset="|".join(PROMPT_SET_NAMES),
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        base=lambda w: FINETUNES[w.model].base,
        audit=lambda w: {
            **audit_summary_params(),
            "worst_pairs": config["audit"]["worst_pairs"],
        },
        bootstrap=config["evaluation"]["bootstrap"],
    script:
        "../scripts/finetune_summary.py"


# Stage III on a fine-tune's drift, from its audit on repair_on (a set with gold labels).
rule finetune_repair_rationales:
    input:
        audit=lambda w: f"{FINETUNE_DIR}{w.model}/{FINETUNES[w.model].repair_on}/audit.csv",
        pairs=lambda w: f"{FINETUNE_DIR}{w.model}/{FINETUNES[w.model].repair_on}/pairs.jsonl",
        split_items=lambda w: f"{RESULTS}prompt_sets/{FINETUNES[w.model].repair_on}.jsonl",
        teacher_prompt="config/prompts/teacher_repair.txt",
        fix_prompt="config/prompts/teacher_fix.txt",
        student_prompt=lambda w: template_for(
            PROMPT_SETS[FINETUNES[w.model].repair_on], config["prompts"]
        ),
        model=get_teacher_files,
        scorer=get_scorer_files,
    output:
        rationales=f"{FINETUNE_DIR}{{model}}/repair/rationales.jsonl",
        dropped=f"{FINETUNE_DIR}{{model}}/repair/rationales.dropped.jsonl",
        summary=f"{FINETUNE_DIR}{{model}}/repair/rationales.summary.json",
        usage=f"{FINETUNE_DIR}{{model}}/repair/rationales.usage.json",
    log:
        f"{LOGS}finetunes/{{model}}/repair/rationales.log",
    wildcard_constraints:
        model="|".join(FT_REPAIRED),
    conda:
        "../envs/hf.yaml"
    threads: model_threads(config["teacher"])
    resources:
        mem_mb=request_of(finetune_repair_request, "mem_mb"),
        runtime=request_of(finetune_repair_request, "runtime"),
        gpu=gpu_request(config["teacher"]),
        llm_api=1 if config["teacher"]["backend"] == "openai" else 0,
    params:
        teacher=config["teacher"],
        distill=config_slice("distill", drop=("predicted_label", "max_fix_rounds")),
        repair=config_slice("repair", drop=("rounds",)),
        screen=scorer_params(),
        cache_dir=config["cache_dir"],
        models_root=MODELS_ROOT,
    script:
        "../scripts/write_repair_rationales.py"


rule finetune_repair_set:
    input:
        repair_rationales=f"{FINETUNE_DIR}{{model}}/repair/rationales.jsonl",
        # Replay: this run's Stage I rationales (the fine-tune's own training data is not known).
        stage1=f"{RESULTS}rationales/distill.jsonl",
    output:
        examples=f"{FINETUNE_DIR}{{model}}/repair/train.jsonl",
        summary=f"{FINETUNE_DIR}{{model}}/repair/train.summary.json",
    log:
        f"{LOGS}finetunes/{{model}}/repair/train_set.log",
    wildcard_constraints:
        model="|".join(FT_REPAIRED),
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


rule finetune_repair_train:
    input:
        examples=f"{FINETUNE_DIR}{{model}}/repair/train.jsonl",
        model=lambda w: side_files(w.model, "tuned"),
    output:
        adapter=f"{FINETUNE_DIR}{{model}}/repair/adapter/adapter_model.safetensors",
        adapter_config=f"{FINETUNE_DIR}{{model}}/repair/adapter/adapter_config.json",
        train_config=f"{FINETUNE_DIR}{{model}}/repair/adapter/train_config.json",
        loss_csv=f"{FINETUNE_DIR}{{model}}/repair/adapter/loss.csv",
        loss_png=f"{FINETUNE_DIR}{{model}}/repair/adapter/loss.png",
    log:
        f"{LOGS}finetunes/{{model}}/repair/train.log",
    benchmark:
        f"{BENCHMARKS}finetunes/{{model}}/repair/train.tsv"
    wildcard_constraints:
        model="|".join(FT_LOCAL_REPAIRED),
    conda:
        "../envs/hf.yaml"
    threads: model_threads(student_section())
    resources:
        mem_mb=request_of(finetune_train_request, "mem_mb"),
        runtime=request_of(finetune_train_request, "runtime"),
        gpu=gpu_request(student_section()),
    params:
        training=config["training"],
        student=lambda w: repair_student(w)["student"],
        load_path=lambda w: repair_student(w)["load_path"],
        # An adapter fine-tune's repair continues its adapter; a checkpoint gets a new LoRA.
        init_adapter=lambda w: FINETUNES[w.model].adapter,
    script:
        "../scripts/train_adapter.py"


rule export_repair_chat_set:
    input:
        examples=f"{FINETUNE_DIR}{{model}}/repair/train.jsonl",
    output:
        chat=f"{FINETUNE_DIR}{{model}}/repair/chat.jsonl",
        summary=f"{FINETUNE_DIR}{{model}}/repair/chat.summary.json",
    log:
        f"{LOGS}finetunes/{{model}}/repair/chat.log",
    wildcard_constraints:
        model="|".join(FT_API_REPAIRED),
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    script:
        "../scripts/export_repair_chat_set.py"
