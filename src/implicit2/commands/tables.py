"""``implicit2 tables``: collect metrics.json files into ``{task}.csv`` files, the paper's claims
checked from them (``claims.csv``, ``claims.html``) and ``paper.tex``.

A metrics path that does not exist counts as a missing run (shown as "---" with a note).
"""

from __future__ import annotations

import argparse
import logging

from implicit2.paper.tables import write_tables

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``tables`` options."""
    parser.add_argument(
        "--metrics",
        nargs="+",
        required=True,
        metavar="JSON",
        help="metrics.json files, results/runs/{task}/{dataset}/{model}/seed{seed}/metrics.json",
    )
    parser.add_argument(
        "--reference",
        default=None,
        metavar="YAML",
        help="the paper's printed values (config/paper_reference.yaml); omit for none",
    )
    parser.add_argument(
        "--reference-schema",
        default=None,
        metavar="YAML",
        help="schema of the reference file (default: workflow/schemas/paper_reference.schema.yaml)",
    )
    parser.add_argument(
        "--figures-dir",
        default=None,
        metavar="DIR",
        help="folder of the figures, DIR/{task}/{curves,cost,reconstructions}.pdf, that paper.tex "
        "includes (e.g. results/figures); omit for tables only",
    )
    parser.add_argument(
        "--paper-config",
        default=None,
        metavar="YAML",
        help="the paper's config, which decides whether runs are at the paper's scale "
        "(default: config/config.yaml of this checkout)",
    )
    parser.add_argument("--out-dir", required=True, help="output folder, e.g. results/tables")


def run(args: argparse.Namespace) -> int:
    """Write the tables; return 0."""
    written = write_tables(
        args.metrics,
        args.out_dir,
        args.reference,
        args.reference_schema,
        figures_dir=args.figures_dir,
        paper_config=args.paper_config,
    )
    log.info("tables: %d files in %s", len(written), args.out_dir)
    return 0
