"""Grid -> targets, wildcard constraints, input/params/resource functions.

Every function here is a thin adapter from Snakemake wildcards to the config modules: the grid
comes from implicit2.pipeline.grid; the training settings (--hparams), the dataset specs (--spec)
and the resources from implicit2.pipeline.run_settings; the paths from implicit2.pipeline.paths.
"""

import shlex

import implicit2.data.registry as i2registry
import implicit2.pipeline.plan as i2plan
from implicit2.pipeline.shapes import UnknownShapeError

WILDCARDS = i2paths.wildcard_patterns(CONFIG)

try:
    CALIBRATION = i2plan.calibration_of(CONFIG)
except ValueError as error:
    raise WorkflowError(f"plan.calibration: {error}") from None
# Each run's train and evaluate jobs as one cluster submission, or each on its own.
RUN_GROUP = "run" if CONFIG["group_runs"] else None


wildcard_constraints:
    task=WILDCARDS["task"],
    dataset=WILDCARDS["dataset"],
    model=WILDCARDS["model"],
    seed=WILDCARDS["seed"],
    # A raw file of a dataset: anything in its folder but the manifest that lists them.
    rawfile=r"(?!manifest\.json$)[^/]+",


# ---- targets --------------------------------------------------------------------------------


def all_metrics(wildcards):
    """Every metrics.json of the selected grid."""
    return i2paths.metrics_paths(CONFIG)


def task_metrics(wildcards):
    """The metrics.json files of one task."""
    return i2paths.metrics_paths(CONFIG, wildcards.task)


def task_curves(wildcards):
    """The curve.csv files of one task (read by the figures beside metrics.json)."""
    return i2paths.run_files(CONFIG, "curve.csv", wildcards.task)


def task_previews(wildcards):
    """The reconstruction folders of one task (recon/, whose preview.png the figures read beside
    metrics.json)."""
    return i2paths.run_files(CONFIG, "recon", wildcards.task)


def reference_input(wildcards):
    """The paper-reference YAML as an input (nothing with `reference: null`)."""
    return [REFERENCE] if REFERENCE else []


def reference_flag(wildcards):
    """`--reference PATH` for `implicit2 tables`, or nothing with `reference: null`."""
    return f"--reference {shlex.quote(REFERENCE)}" if REFERENCE else ""


def tables_dir(wildcards):
    """The folder of the tables (results/tables)."""
    return str(Path(i2paths.PAPER_TEX).parent)


def figures_root(wildcards):
    """The folder that holds every task's figure folder (results/figures)."""
    return str(Path(i2paths.FIGURE_DIR).parent)


def paper_figures(wildcards):
    """The figure PDFs that paper.tex includes (every planned task's)."""
    return [path for path in i2paths.figure_paths(CONFIG) if path.endswith(".pdf")]


def paper_config_path():
    """config/config.yaml, the paper's grid, which decides whether runs are at the paper's
    scale: in the working directory, else beside the Snakefile (for --directory elsewhere).
    """
    local = Path("config") / "config.yaml"
    return str(local if local.is_file() else Path(workflow.basedir) / local)


PAPER_CONFIG = paper_config_path()


def figures_dir(wildcards):
    """The folder of one task's figures."""
    return i2paths.FIGURE_DIR.format(task=wildcards.task)


# ---- data -----------------------------------------------------------------------------------


def raw_dir(wildcards):
    """resources/raw/{dataset}: where download puts the raw files."""
    return i2paths.RAW_DIR.format(dataset=wildcards.dataset)


def raw_files(wildcards):
    """The raw files that prepare reads (and the manifest lists): resources/raw/{dataset}/NAME
    for each file that rule fetch makes, the user's own file (`datasets.<name>.path`).
    """
    spec = i2settings.dataset_spec(CONFIG, wildcards.dataset, "download")
    try:
        source = i2registry.resolve_dataset(wildcards.dataset, spec)
    except ValueError as error:
        raise WorkflowError(str(error)) from None
    return [str(path) for path in source.raw_files(raw_dir(wildcards))]


def download_spec(wildcards):
    """The dataset's data settings as JSON (without prepare options)."""
    return i2settings.to_json(
        i2settings.dataset_spec(CONFIG, wildcards.dataset, "download")
    )


def prepare_spec(wildcards):
    """The dataset's data settings as JSON, prepare options included."""
    i2settings.check_dataset(CONFIG, wildcards.task, wildcards.dataset)
    return i2settings.to_json(
        i2settings.dataset_spec(CONFIG, wildcards.dataset, "prepare")
    )


# ---- runs -----------------------------------------------------------------------------------


def run_directory(wildcards):
    """results/runs/{task}/{dataset}/{model}/seed{seed}."""
    run = i2grid.Run(
        wildcards.task, wildcards.dataset, wildcards.model, int(wildcards.seed)
    )
    return i2paths.run_dir(run)


def train_hparams(wildcards):
    """The resolved training settings of a run as JSON (--hparams); input_scale null where
    `implicit2 train` derives it from the signal (a `path:` dataset with no scale of its own).
    """
    run = (wildcards.task, wildcards.dataset, wildcards.model)
    hparams = i2settings.resolve_hparams(CONFIG, *run)
    if i2settings.derives_input_scale(CONFIG, *run):
        hparams["input_scale"] = None
    return i2settings.to_json(hparams)


# ---- resources ------------------------------------------------------------------------------


def stage_threads(stage):
    """Threads of a stage's jobs, from the config (per task, per dataset)."""

    def threads(wildcards):
        return i2settings.resolve_resources(
            CONFIG, wildcards.task, wildcards.dataset, stage
        )["threads"]

    return threads


def stage_resource(stage, key):
    """One resource (gpu) of a stage's jobs, from the config."""

    def resource(wildcards):
        return i2settings.resolve_resources(
            CONFIG, wildcards.task, wildcards.dataset, stage
        )[key]

    return resource


def first_request(stage, wildcards):
    """runtime and mem_mb of a job's first attempt: from the plan's prediction for train and
    evaluate jobs when `plan.calibration` names a calibration, else (and for a dataset of unknown
    size that is not prepared yet) from the config."""
    if CALIBRATION is not None and stage in i2plan.PLANNED_RULES:
        try:
            prediction = i2plan.predict_job(
                CONFIG,
                CALIBRATION,
                stage,
                wildcards.task,
                wildcards.dataset,
                wildcards.model,
            )
        except UnknownShapeError:
            pass
        else:
            return i2plan.first_request(CONFIG["plan"], prediction)
    return i2settings.resolve_resources(
        CONFIG, wildcards.task, wildcards.dataset, stage
    )


def stage_request(stage, key):
    """runtime (minutes) or mem_mb of a stage's jobs at a given attempt: the first request times
    the attempt, within `plan.partition_max_runtime` and `plan.max_mem_mb`."""

    def request(wildcards, attempt):
        first = first_request(stage, wildcards)
        return i2plan.attempt_request(CONFIG["plan"], first, attempt)[key]

    return request


# ---- plan (workflow/rules/plan.smk) ----------------------------------------------------------


def plan_config(wildcards):
    """The validated config as JSON, for `implicit2 plan --config-json`."""
    return i2settings.to_json(CONFIG)


# ---- bench (workflow/rules/bench.smk) --------------------------------------------------------

BENCH_TASK = "image_representation"
BENCH_STEPS = 50


def bench_context():
    """(dataset, models) of the benchmarked task: the dataset whose settings the camera benchmark
    takes (camera itself when the task lists it, else its first dataset) and its deq/mfn models.
    """
    datasets = i2grid.task_datasets(CONFIG, BENCH_TASK) or ["camera"]
    dataset = "camera" if "camera" in datasets else datasets[0]
    models = [
        name
        for name in i2grid.task_models(CONFIG, BENCH_TASK, dataset)
        if i2config.parse_model_name(name).family in ("deq", "mfn")
    ]
    return dataset, models


BENCH_DATASET, BENCH_MODELS = bench_context()


def bench_settings(wildcards):
    """Image side, learning rate and input scale of the benchmark, from the task's settings."""
    prepare = i2settings.dataset_spec(CONFIG, BENCH_DATASET).get("prepare", {})
    hparams = i2settings.resolve_hparams(
        CONFIG, BENCH_TASK, BENCH_DATASET, BENCH_MODELS[0]
    )
    return (
        f"--size {int(prepare.get('size', 256))} --lr {hparams['lr']}"
        f" --input-scale {hparams['input_scale']} --device {hparams['device']}"
    )


def bench_resource(key):
    """One resource (threads, mem_mb, gpu) of the benchmarked task's training jobs."""

    def resource(wildcards):
        return i2settings.resolve_resources(CONFIG, BENCH_TASK, BENCH_DATASET, "train")[
            key
        ]

    return resource
