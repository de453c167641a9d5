rule convert_embedded_model:
    output:
        model_dir=directory("results/models/{embedded}"),
    log:
        "logs/models/convert_{embedded}.log",
    benchmark:
        "benchmarks/models/convert_{embedded}.tsv"
    conda:
        "../envs/hf.yaml"
    script:
        "../scripts/convert_embedded_model.py"
