"""Tables (one CSV per task; the claims; paper.tex), figures (one job per task) and paper.pdf.

`implicit2 tables` writes every task's CSV, claims.csv/.html and paper.tex into its --out-dir; the
two rules below run it in a shadow directory so that each job delivers only its declared outputs.
paper.tex includes the figures by relative path; `paper_pdf` declares them, so they exist before
pdflatex runs, and it is part of `all` only where pdflatex is installed.
"""

PDFLATEX_FOUND = shutil.which("pdflatex") is not None
if not PDFLATEX_FOUND:
    logger.warning(
        "pdflatex not found: results/tables/paper.pdf is not built (results/tables/paper.tex "
        "is); install texlive-latex-base and texlive-latex-recommended to get the PDF"
    )


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
        paper_config=PAPER_CONFIG,
    output:
        tex=report(
            "results/tables/paper.tex",
            caption="../report/tables.rst",
            category="Tables",
            labels={"task": "all", "file": "paper.tex"},
        ),
        claims=report(
            "results/tables/claims.csv",
            caption="../report/claims.rst",
            category="Claims",
            labels={"file": "claims.csv"},
        ),
        claims_html=report(
            "results/tables/claims.html",
            caption="../report/claims.rst",
            category="Claims",
            labels={"file": "claims.html"},
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
        figures_dir=figures_root,
    shell:
        "python -m implicit2 tables --metrics {input.metrics:q} {params.reference}"
        " --paper-config {input.paper_config:q} --figures-dir {params.figures_dir:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule paper_pdf:
    input:
        tex="results/tables/paper.tex",
        figures=paper_figures,
    output:
        pdf=report(
            "results/tables/paper.pdf",
            caption="../report/tables.rst",
            category="Tables",
            labels={"task": "all", "file": "paper.pdf"},
        ),
    log:
        "logs/tables/paper_pdf.log",
    benchmark:
        "benchmarks/tables/paper_pdf.tsv"
    localrule: True
    conda:
        "../../envs/implicit2.yaml"
    shell:
        "python -m implicit2 pdf --tex {input.tex:q} --out {output.pdf:q} > {log:q} 2>&1"


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
