"""Which Python runs the jobs: JOB_PATH, the PATH export the Snakefile's shell prefix ends with,
and under --sdm apptainer the image every job runs in (IMPLICIT2_CONTAINER, docs/container.md).
"""

import importlib.util
import os
import shlex
import shutil
import subprocess


def has_torch():
    """Whether this interpreter can import torch (found, not imported: the Snakefile stays fast)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def job_path():
    """Empty with --sdm conda or apptainer (the environment brings Python). Else Snakemake's own
    bin/ when its interpreter has the jobs' dependencies, so that `.venv/bin/snakemake` needs no
    activated venv; else empty when the `python` on PATH has them; else a WorkflowError before
    any job, naming what to activate."""
    methods = {method.name for method in workflow.deployment_settings.deployment_method}
    if "APPTAINER" in methods and not CONTAINER:
        raise WorkflowError(
            "--sdm apptainer needs the image the jobs run in: build it from the Dockerfile and set "
            "IMPLICIT2_CONTAINER (e.g. docker://REGISTRY/implicit2:0.2.0 or a .sif file; "
            "docs/container.md)"
        )
    if methods & {"CONDA", "APPTAINER"}:
        return ""
    here = Path(sys.executable).parent
    if has_torch() and shutil.which("python", path=str(here)):
        return f"export PATH={shlex.quote(str(here))}:$PATH; "
    python = shutil.which("python")
    probe = "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is None)"
    if (
        python
        and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0
    ):
        return ""
    raise WorkflowError(
        f"jobs run `python -m implicit2`, but neither Snakemake's Python ({sys.executable}) nor "
        f"the `python` on PATH ({python or 'none'}) has torch: run the project's "
        "`.venv/bin/snakemake` (after `make setup`), activate an environment with implicit2's "
        "dependencies, or add `--sdm conda`"
    )


# The image built from the Dockerfile, for --sdm apptainer: any URI Snakemake accepts.
CONTAINER = os.environ.get("IMPLICIT2_CONTAINER") or None


container: CONTAINER


JOB_PATH = job_path()
