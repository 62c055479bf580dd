"""Tables (one CSV per task, paper.tex) and figures (one job per task).

`implicit2 tables` writes every task's CSV and paper.tex into its --out-dir; the two rules below
run it in a shadow directory so that each job delivers only its declared outputs.
"""


rule table:
    input:
        metrics=task_metrics,
        reference=reference_input,
    output:
        table=report(
            "results/tables/{task}.csv",
            caption="../report/tables.rst",
            category="Tables",
            labels={"task": "{task}", "file": "CSV"},
        ),
    log:
        "logs/tables/{task}.log",
    benchmark:
        "benchmarks/tables/{task}.tsv"
    localrule: True
    shadow:
        "minimal"
    conda:
        "../../envs/implicit2.yaml"
    params:
        reference=reference_flag,
        out_dir=tables_dir,
    shell:
        "python -m implicit2 tables --metrics {input.metrics:q} {params.reference}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule paper:
    input:
        metrics=all_metrics,
        reference=reference_input,
    output:
        tex=report(
            "results/tables/paper.tex",
            caption="../report/tables.rst",
            category="Tables",
            labels={"task": "all", "file": "paper.tex"},
        ),
    log:
        "logs/tables/paper.log",
    benchmark:
        "benchmarks/tables/paper.tsv"
    localrule: True
    shadow:
        "minimal"
    conda:
        "../../envs/implicit2.yaml"
    params:
        reference=reference_flag,
        out_dir=tables_dir,
    shell:
        "python -m implicit2 tables --metrics {input.metrics:q} {params.reference}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule figures:
    input:
        metrics=task_metrics,
        curves=task_curves,
        previews=task_previews,
    output:
        curves_pdf="results/figures/{task}/curves.pdf",
        cost_pdf="results/figures/{task}/cost.pdf",
        reconstructions_pdf="results/figures/{task}/reconstructions.pdf",
        curves_png=report(
            "results/figures/{task}/curves.png",
            caption="../report/figures.rst",
            category="Figures",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "training curves"},
        ),
        cost_png=report(
            "results/figures/{task}/cost.png",
            caption="../report/figures.rst",
            category="Figures",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "cost"},
        ),
        reconstructions_png=report(
            "results/figures/{task}/reconstructions.png",
            caption="../report/figures.rst",
            category="Figures",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "reconstructions"},
        ),
    log:
        "logs/figures/{task}.log",
    benchmark:
        "benchmarks/figures/{task}.tsv"
    localrule: True
    conda:
        "../../envs/implicit2.yaml"
    params:
        out_dir=figures_dir,
    shell:
        "python -m implicit2 figures --task {wildcards.task} --metrics {input.metrics:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


# `snakemake table_<task>`: one task's table and figures, nothing of the other tasks.
for _task in i2paths.planned_tasks(CONFIG):

    rule:
        name:
            f"table_{_task}"
        input:
            i2paths.TABLE.format(task=_task),
            i2paths.figure_paths(CONFIG, _task),
