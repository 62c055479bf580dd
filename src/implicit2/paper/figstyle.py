"""Figure sizes, fonts, the shared legend and atomic PDF + PNG saving (matplotlib Agg).

Figures are built on :class:`matplotlib.figure.Figure` with an explicit Agg canvas, so nothing
touches pyplot's global state or needs a display. Sizes are fixed per panel and saved without
``bbox_inches="tight"``, so a PNG is exactly ``figsize × DPI`` pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import matplotlib as mpl
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from implicit2.io import atomic_path

log = logging.getLogger(__name__)

DPI = 150
FORMATS: tuple[str, ...] = ("pdf", "png")
#: Inches per panel (width, height) of each figure, and the strip kept for the legend.
CURVE_PANEL: tuple[float, float] = (3.6, 2.8)
COST_PANEL: tuple[float, float] = (5.6, 3.6)
RECON_PANEL: tuple[float, float] = (3.2, 2.2)
RECON_COLUMNS = 4
LEGEND_HEIGHT = 0.8
LEGEND_ENTRY_WIDTH = 1.2  # inches per legend entry, to choose the number of legend columns

RC: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "hatch.linewidth": 0.8,
    "pdf.fonttype": 42,  # embed TrueType: text stays text in the PDF
}


def figure_size(
    rows: int, cols: int, panel: tuple[float, float], legend: bool
) -> tuple[float, float]:
    """Figure size in inches for a grid of ``rows × cols`` panels (plus a legend strip)."""
    return (panel[0] * cols, panel[1] * rows + (LEGEND_HEIGHT if legend else 0.0))


@contextmanager
def style() -> Iterator[None]:
    """The shared font sizes and grid style."""
    with mpl.rc_context(cast("dict[Any, Any]", RC)):  # matplotlib types keys as literals
        yield


def new_figure(rows: int, cols: int, panel: tuple[float, float], legend: bool) -> Figure:
    """An Agg-backed figure of the size :func:`figure_size` gives, with constrained layout."""
    figure = Figure(figsize=figure_size(rows, cols, panel, legend), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def add_legend(figure: Figure, handles: Sequence[Artist], labels: Sequence[str]) -> None:
    """One legend for the whole figure, in the strip below the panels."""
    if handles:
        columns = max(1, min(len(handles), int(figure.get_figwidth() / LEGEND_ENTRY_WIDTH)))
        figure.legend(handles, labels, loc="outside lower center", ncol=columns, frameon=False)


def message(axes: Axes, text: str) -> None:
    """Write ``text`` in the middle of an empty panel (no data, missing preview …)."""
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="0.35")


def save_figure(figure: Figure, out_dir: str | Path, stem: str) -> list[Path]:
    """Save ``{out_dir}/{stem}.pdf`` and ``.png`` atomically; return their paths."""
    written = []
    for fmt in FORMATS:
        path = Path(out_dir) / f"{stem}.{fmt}"
        with atomic_path(path) as temp:
            figure.savefig(temp, format=fmt, dpi=DPI)
        written.append(path)
        log.info("wrote %s", path)
    return written
