"""The one command line that every Snakemake rule calls: ``python -m implicit2 COMMAND …``.

Each sub-command lives in ``implicit2.commands.<name>`` and exposes ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from implicit2.training.allocator import keep_freed_memory

COMMANDS: dict[str, str] = {
    "download": "fetch one dataset's raw files (or generate a demo signal)",
    "prepare": "turn raw files into the canonical results/data/{task}/{dataset}.npz",
    "train": "train one model on one prepared dataset (one run directory)",
    "evaluate": "evaluate a trained run: metrics.json and reconstructions",
    "tables": "collect metrics.json files into per-task CSVs, the claims checked and paper.tex",
    "figures": "draw curves, cost bars and reconstruction grids",
    "pdf": "compile paper.tex and the figures it includes into paper.pdf (needs pdflatex)",
    "fit": "fit a model to your own file (image, audio, video or mesh) without Snakemake",
    "bench": "speed and memory benchmarks",
    "plan": "predict every job's seconds and memory (results/plan/jobs.csv) and the grid's totals",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser, with one sub-parser per command (arguments added lazily)."""
    parser = argparse.ArgumentParser(prog="implicit2", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the chosen command and return its exit code."""
    argv = sys.argv[1:] if argv is None else argv
    position = next((i for i, arg in enumerate(argv) if arg in COMMANDS), None)
    if position is None:
        build_parser().parse_args(argv)  # prints usage/help or the error, then exits
        return 2
    command = argv[position]
    keep_freed_memory()
    module = importlib.import_module(f"implicit2.commands.{command}")
    command_parser = argparse.ArgumentParser(
        prog=f"implicit2 {command}", description=COMMANDS[command]
    )
    command_parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    module.add_arguments(command_parser)
    args = command_parser.parse_args(argv[:position] + argv[position + 1 :])
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(module.run(args) or 0)
    except (ValueError, OSError) as error:
        logging.getLogger("implicit2").debug("traceback", exc_info=True)
        logging.getLogger("implicit2").error("%s", error)
        return 2
