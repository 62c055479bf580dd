"""Speed and memory of the DEQ against its explicit twin over the size/filter grid.

`snakemake bench` trains every deq/mfn model of the image_representation grid for BENCH_STEPS
steps on the cameraman (one process, so the figures are comparable) and draws time per step and
memory against model size: the pipeline's version of the paper's efficiency figure. Not part of
`all`: timings need a quiet machine.
"""


rule bench:
    output:
        json=expand("results/bench/{model}.json", model=BENCH_MODELS),
        pdf="results/bench/efficiency.pdf",
        png=report(
            "results/bench/efficiency.png",
            caption="../report/bench.rst",
            category="Figures",
            subcategory="efficiency",
            labels={"figure": "time and memory per step"},
        ),
    log:
        "logs/bench/efficiency.log",
    benchmark:
        "benchmarks/bench/efficiency.tsv"
    conda:
        "../../envs/implicit2.yaml"
    threads: bench_resource("threads")
    resources:
        mem_mb=bench_resource("mem_mb"),
        gpu=bench_resource("gpu"),
    params:
        models=BENCH_MODELS,
        settings=bench_settings,
        steps=BENCH_STEPS,
        out_dir=lambda wildcards, output: str(Path(output.pdf).parent),
    shell:
        "OMP_NUM_THREADS={threads} python -m implicit2 bench --grid --models {params.models}"
        " --image camera --steps {params.steps} {params.settings} --threads {threads}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"
