"""One training run per task x dataset x model x seed, then its evaluation."""


rule train:
    input:
        data="results/data/{task}/{dataset}.npz",
    output:
        model="results/runs/{task}/{dataset}/{model}/seed{seed}/model.pt",
        curve="results/runs/{task}/{dataset}/{model}/seed{seed}/curve.csv",
        record="results/runs/{task}/{dataset}/{model}/seed{seed}/train.json",
    log:
        "logs/train/{task}/{dataset}/{model}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{task}/{dataset}/{model}/seed{seed}.tsv"
    group:
        RUN_GROUP
    conda:
        "../../envs/implicit2.yaml"
    threads: stage_threads("train")
    resources:
        mem_mb=stage_request("train", "mem_mb"),
        runtime=stage_request("train", "runtime"),
        gpu=stage_resource("train", "gpu"),
    params:
        hparams=train_hparams,
        run_dir=run_directory,
    shell:
        'A={log:q}; A="${{A%.log}}.attempts.log"; '
        "echo '=== train attempt started' $(date -u +%FT%TZ) on $(hostname) >> \"$A\"; "
        "OMP_NUM_THREADS={threads} python -m implicit2 train --task {wildcards.task}"
        " --dataset {wildcards.dataset} --model {wildcards.model} --seed {wildcards.seed}"
        " --data {input.data:q} --hparams {params.hparams:q} --out {params.run_dir:q}"
        " 2>&1 | (trap '' TERM INT; exec tee -a \"$A\") > {log:q}"


rule evaluate:
    input:
        model="results/runs/{task}/{dataset}/{model}/seed{seed}/model.pt",
        curve="results/runs/{task}/{dataset}/{model}/seed{seed}/curve.csv",
        record="results/runs/{task}/{dataset}/{model}/seed{seed}/train.json",
        data="results/data/{task}/{dataset}.npz",
    output:
        metrics="results/runs/{task}/{dataset}/{model}/seed{seed}/metrics.json",
        recon=directory("results/runs/{task}/{dataset}/{model}/seed{seed}/recon"),
    log:
        "logs/evaluate/{task}/{dataset}/{model}/seed{seed}.log",
    benchmark:
        "benchmarks/evaluate/{task}/{dataset}/{model}/seed{seed}.tsv"
    group:
        RUN_GROUP
    conda:
        "../../envs/implicit2.yaml"
    threads: stage_threads("evaluate")
    resources:
        mem_mb=stage_request("evaluate", "mem_mb"),
        runtime=stage_request("evaluate", "runtime"),
        gpu=stage_resource("evaluate", "gpu"),
    params:
        run_dir=run_directory,
    shell:
        'A={log:q}; A="${{A%.log}}.attempts.log"; '
        "echo '=== evaluate attempt started' $(date -u +%FT%TZ) on $(hostname) >> \"$A\"; "
        "OMP_NUM_THREADS={threads} python -m implicit2 evaluate --run {params.run_dir:q}"
        " --data {input.data:q} --out {output.metrics:q} 2>&1 | (trap '' TERM INT; exec tee -a \"$A\") > {log:q}"
