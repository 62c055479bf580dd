"""Compile ``paper.tex`` into ``paper.pdf`` with ``pdflatex``.

pdflatex runs in the folder of the .tex file, so the figures it includes by relative path are found
there (in ``results/tables/`` and in a Snakemake shadow directory alike); its auxiliary files go to
a temporary folder and the PDF is moved onto the output atomically.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from implicit2.io import atomic_path

log = logging.getLogger(__name__)

PDFLATEX = "pdflatex"
#: At most this many passes: longtable settles its column widths over two.
MAX_PASSES = 3
PASS_TIMEOUT_S = 300
_RERUN = "Rerun LaTeX"  # pdflatex's and longtable's "run again" hint in the log
_LOG_TAIL = 3000


class PdflatexMissing(OSError):
    """pdflatex is not on the PATH."""


class PdflatexFailed(RuntimeError):
    """pdflatex ran and failed; the message carries the end of its output."""


def find_pdflatex() -> str:
    """The pdflatex executable.

    Raises:
        PdflatexMissing: it is not on the PATH; the message says how to install it.
    """
    found = shutil.which(PDFLATEX)
    if found is None:
        raise PdflatexMissing(
            "pdflatex is not on the PATH, so paper.pdf cannot be built: install it (Debian/Ubuntu: "
            "apt-get install texlive-latex-base texlive-latex-recommended; elsewhere TeX Live or "
            "MiKTeX), or compile results/tables/paper.tex on another machine"
        )
    return found


def compile_pdf(tex: str | Path, out: str | Path) -> Path:
    """Compile ``tex`` with pdflatex (in its own folder) and write the PDF to ``out``.

    Raises:
        FileNotFoundError: ``tex`` does not exist.
        PdflatexMissing: pdflatex is not installed.
        PdflatexFailed: pdflatex failed; the message carries the end of its output.
    """
    tex, out = Path(tex), Path(out)
    if not tex.is_file():
        raise FileNotFoundError(f"{tex}: no such file; build it with `implicit2 tables` first")
    command = [find_pdflatex(), "-interaction=nonstopmode", "-halt-on-error"]
    environment = {**os.environ, "max_print_line": "10000"}  # one file name per line of output
    with tempfile.TemporaryDirectory(prefix="implicit2-pdf.") as build:
        for number in range(1, MAX_PASSES + 1):
            result = subprocess.run(
                [*command, f"-output-directory={build}", tex.name],
                cwd=tex.parent,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=PASS_TIMEOUT_S,
                check=False,
                env=environment,
            )
            log.debug("pdflatex pass %d on %s:\n%s", number, tex, result.stdout)
            if result.returncode != 0:
                raise PdflatexFailed(
                    f"pdflatex failed on {tex} (exit {result.returncode}, pass {number}); the end "
                    f"of its output:\n{result.stdout[-_LOG_TAIL:]}"
                )
            if number > 1 and _RERUN not in result.stdout:
                break
        pdf = Path(build) / f"{tex.stem}.pdf"
        with atomic_path(out) as temp:
            shutil.copyfile(pdf, temp)
    log.info("wrote %s (%d pdflatex passes)", out, number)
    return out
