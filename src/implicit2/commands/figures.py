"""``implicit2 figures``: training curves, cost bars and a reconstruction grid for one task.

Writes exactly ``curves``, ``cost`` and ``reconstructions`` as ``.pdf`` and ``.png`` in
``--out-dir``; missing or diverged runs show as gaps or "missing" panels, never as errors.
"""

from __future__ import annotations

import argparse
import logging

from implicit2.paper.figures import write_figures

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``figures`` options."""
    parser.add_argument("--task", required=True, help="task name, e.g. image_representation")
    parser.add_argument(
        "--metrics",
        nargs="+",
        required=True,
        metavar="JSON",
        help="metrics.json files of the task; curve.csv and recon/preview.png are read beside them",
    )
    parser.add_argument("--out-dir", required=True, help="output folder, e.g. results/figures/TASK")


def run(args: argparse.Namespace) -> int:
    """Draw the figures; return 0."""
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting chatter
    written = write_figures(args.task, args.metrics, args.out_dir)
    log.info("figures: %d files in %s", len(written), args.out_dir)
    return 0
