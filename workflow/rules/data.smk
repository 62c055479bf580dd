"""Raw data -> prepared arrays."""


rule fetch:
    output:
        # update(): Snakemake never deletes a file already there (put by hand, or fetched before)
        # when the job runs again; `download --file` keeps a valid one and refuses a wrong one.
        raw=update("resources/raw/{dataset}/{rawfile}"),
    log:
        "logs/fetch/{dataset}/{rawfile}.log",
    benchmark:
        "benchmarks/fetch/{dataset}/{rawfile}.tsv"
    localrule: True
    conda:
        "../../envs/implicit2.yaml"
    params:
        spec=download_spec,
        dest=raw_dir,
    shell:
        'A={log:q}; A="${{A%.log}}.attempts.log"; '
        "echo '=== fetch attempt started' $(date -u +%FT%TZ) on $(hostname) >> \"$A\"; "
        "python -m implicit2 download --dataset {wildcards.dataset} --spec {params.spec:q}"
        " --dest {params.dest:q} --file {wildcards.rawfile:q}"
        " 2>&1 | (trap '' TERM INT; exec tee -a \"$A\") > {log:q}"


rule download:
    input:
        raw=raw_files,
    output:
        manifest="resources/raw/{dataset}/manifest.json",
    log:
        "logs/download/{dataset}.log",
    benchmark:
        "benchmarks/download/{dataset}.tsv"
    localrule: True
    conda:
        "../../envs/implicit2.yaml"
    params:
        spec=download_spec,
        dest=raw_dir,
    shell:
        'A={log:q}; A="${{A%.log}}.attempts.log"; '
        "echo '=== download attempt started' $(date -u +%FT%TZ) on $(hostname) >> \"$A\"; "
        "python -m implicit2 download --dataset {wildcards.dataset}"
        " --spec {params.spec:q} --dest {params.dest:q}"
        " 2>&1 | (trap '' TERM INT; exec tee -a \"$A\") > {log:q}"


rule prepare:
    input:
        manifest="resources/raw/{dataset}/manifest.json",
        raw=raw_files,
    output:
        data="results/data/{task}/{dataset}.npz",
    log:
        "logs/prepare/{task}/{dataset}.log",
    benchmark:
        "benchmarks/prepare/{task}/{dataset}.tsv"
    conda:
        "../../envs/implicit2.yaml"
    threads: stage_threads("prepare")
    resources:
        mem_mb=stage_request("prepare", "mem_mb"),
        runtime=stage_request("prepare", "runtime"),
        gpu=stage_resource("prepare", "gpu"),
    params:
        spec=prepare_spec,
        raw=raw_dir,
    shell:
        'A={log:q}; A="${{A%.log}}.attempts.log"; '
        "echo '=== prepare attempt started' $(date -u +%FT%TZ) on $(hostname) >> \"$A\"; "
        "OMP_NUM_THREADS={threads} python -m implicit2 prepare --task {wildcards.task}"
        " --dataset {wildcards.dataset} --raw {params.raw:q} --spec {params.spec:q}"
        " --out {output.data:q} 2>&1 | (trap '' TERM INT; exec tee -a \"$A\") > {log:q}"
