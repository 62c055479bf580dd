"""(Implicit)^2 reproduction: raw data -> prepared arrays -> training runs -> metrics -> tables,
the paper's claims checked, figures, results/tables/paper.tex and (with pdflatex) paper.pdf. The
grid and all logic live in implicit2.pipeline.config (load and validate), implicit2.pipeline.grid
(the runs), implicit2.pipeline.run_settings (--hparams, --spec, resources) and
implicit2.pipeline.paths (outputs and targets); the rules in workflow/rules/ only
call `python -m implicit2 COMMAND`.

    snakemake --profile profiles/local                          # the paper's grid
    snakemake --profile profiles/local --configfile config/demo.yaml     # the CPU demo
    snakemake -n --config tasks=[audio] seeds=[0]                # a subset, dry run
"""

import shlex
import shutil
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


SRC_DIR = Path(workflow.basedir) / "src"
SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"

try:
    import implicit2.pipeline.config as i2config
    import implicit2.pipeline.grid as i2grid
    import implicit2.pipeline.run_settings as i2settings
    import implicit2.pipeline.paths as i2paths
except ImportError:
    # Not installed (e.g. Snakemake from another environment): use this checkout's src/.
    # The config modules need only PyYAML and jsonschema, which Snakemake itself requires.
    sys.path.insert(0, str(SRC_DIR))
    try:
        import implicit2.pipeline.config as i2config
        import implicit2.pipeline.grid as i2grid
        import implicit2.pipeline.run_settings as i2settings
        import implicit2.pipeline.paths as i2paths
    except ImportError as error:
        raise WorkflowError(
            f"cannot import implicit2's config modules ({error}); install the project with "
            "`make setup` (or `pip install -e .`) and run Snakemake from that environment"
        ) from error

try:
    CONFIG = i2config.validate(config, schema=SCHEMA)
    REFERENCE = i2paths.reference_path(CONFIG, workflow.basedir)
except i2config.ConfigError as error:
    raise WorkflowError(f"{error}\n(see config/README.md and {SCHEMA})") from None
for _warning in i2settings.shadowed_train_keys(CONFIG, config):
    logger.warning(f"config warning: {_warning}")

# Jobs run `python -m implicit2 ...` from this checkout, whichever Python environment executes
# them: the project's venv, or a conda environment made from envs/implicit2.yaml (--sdm conda).
# JOB_PATH puts Snakemake's own interpreter first when that is the project's venv.


include: "workflow/rules/environment.smk"


SRC_ON_PYTHONPATH = shlex.quote(str(SRC_DIR))
shell.prefix(
    "set -euo pipefail; export PYTHONPATH={SRC_ON_PYTHONPATH}${{PYTHONPATH:+:$PYTHONPATH}}; "
    "{JOB_PATH}"
)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/plan.smk"


rule all:
    default_target: True
    input:
        i2paths.final_targets(CONFIG, pdf=PDFLATEX_FOUND),
