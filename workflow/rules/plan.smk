"""`snakemake plan`: every job's predicted seconds and memory, without training (not in `all`)."""


rule plan:
    output:
        jobs=i2plan.JOBS_CSV,
    log:
        "logs/plan.log",
    localrule: True
    conda:
        "../../envs/implicit2.yaml"
    params:
        config=plan_config,
    shell:
        "python -m implicit2 plan --config-json {params.config:q} --out {output.jobs:q}"
        " 2>&1 | tee {log:q}"
