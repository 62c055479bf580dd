"""Everything the Snakefile imports, torch-free: config loading and validation (``config``,
``schema``), the grid of runs (``grid``), each run's ``--hparams``, ``--spec`` and job resources
(``run_settings``), and the output paths and targets (``paths``)."""
