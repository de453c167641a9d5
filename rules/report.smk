# The run's tables and figures across models, for the paper comparison and the report.


rule main_results:
    input:
        metrics=expand(f"{RESULTS}tables/metrics_{{model}}.csv", model=MODELS),
        audits=expand(f"{RESULTS}audit/{{model}}/summary.json", model=AUDITED),
        open_domain=open_domain_rates(),
        check=f"{RESULTS}audit/judge_check.json",
    output:
        csv=report(
            f"{RESULTS}tables/main_results.csv",
            caption="../report/main_results.rst",
            category="Main results",
        ),
        md=report(
            f"{RESULTS}tables/main_results.md",
            caption="../report/main_results.rst",
            category="Main results",
        ),
        comparison=report(
            f"{RESULTS}tables/paper_comparison.md",
            caption="../report/paper_comparison.rst",
            category="Main results",
        ),
    log:
        f"{LOGS}report/main_results.log",
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        models=MODELS,
        audited=AUDITED,
        open_domain_models=OPEN_DOMAIN_MODELS,
        protocol={
            "audit_split": AUDIT_SPLIT,
            "eval_split": EVAL_SPLIT,
            "protocol": PROTOCOL,
        },
        audit=config["audit"],
        teacher=config["teacher"],
        student=config["student"],
    script:
        "../scripts/main_results.py"


rule figures:
    input:
        main=f"{RESULTS}tables/main_results.csv",
        metrics=expand(f"{RESULTS}tables/metrics_{{model}}.csv", model=MODELS),
        audits=expand(f"{RESULTS}audit/{{model}}/summary.json", model=AUDITED),
        audit_tables=expand(f"{RESULTS}audit/{{model}}/audit.csv", model=AUDITED),
        open_domain=open_domain_rates(),
        losses=expand(f"{RESULTS}adapters/{{model}}/loss.csv", model=TRAINED),
    output:
        **{
            f"{name}_{ext}": (
                report(
                    f"{RESULTS}figures/{name}.png",
                    caption=f"../report/{name}.rst",
                    category="Figures",
                )
                if ext == "png"
                else f"{RESULTS}figures/{name}.pdf"
            )
            for name in FIGURES
            for ext in ("png", "pdf")
        },
    log:
        f"{LOGS}report/figures.log",
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=LIGHT["mem_mb"],
        runtime=LIGHT["runtime"],
    params:
        models=MODELS,
        audited=AUDITED,
        trained=TRAINED,
        open_domain_models=OPEN_DOMAIN_MODELS,
        delta=config["audit"]["delta"],
    script:
        "../scripts/figures.py"
