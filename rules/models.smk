rule convert_embedded_model:
    output:
        model_dir=directory(f"{MODELS_ROOT}/{{embedded}}"),
    log:
        f"{LOGS}models/convert_{{embedded}}.log",
    benchmark:
        f"{BENCHMARKS}models/convert_{{embedded}}.tsv"
    priority: job_priority("stage1")
    conda:
        "../envs/hf.yaml"
    threads: 1
    resources:
        mem_mb=request_of(convert_request, "mem_mb"),
        runtime=request_of(convert_request, "runtime"),
    script:
        "../scripts/convert_embedded_model.py"
