"""``implicit2 pdf``: compile ``paper.tex`` (with the figures it includes) into ``paper.pdf``.

Needs ``pdflatex`` on the PATH; without it the command fails with a message that says how to
install it (``paper.tex`` itself never needs it).
"""

from __future__ import annotations

import argparse
import logging

from implicit2.paper.pdf import PdflatexFailed, compile_pdf

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pdf`` options."""
    parser.add_argument("--tex", required=True, help="the document, e.g. results/tables/paper.tex")
    parser.add_argument("--out", required=True, help="the PDF, e.g. results/tables/paper.pdf")


def run(args: argparse.Namespace) -> int:
    """Compile the document; return 0, or 1 when pdflatex fails (its output in the log)."""
    try:
        compile_pdf(args.tex, args.out)
    except PdflatexFailed as error:
        log.error("%s", error)
        return 1
    return 0
