"""LaTeX primitives: escaping, number formatting, footnote marks and the document around tables.

Only packages from Debian's ``texlive-latex-base`` and ``texlive-latex-recommended`` are used
(array, booktabs, float, longtable, graphicx, geometry), and the output is plain ASCII.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

_SPECIALS: dict[str, str] = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "-": "-{}",  # keeps "--" in a name from becoming a dash
    '"': r"\textquotedbl{}",
}

DASH = "---"
PREAMBLE = r"""\documentclass[10pt]{article}
\usepackage[margin=2cm]{geometry}
\usepackage{array}
\usepackage{booktabs}
\usepackage{float}
\usepackage{longtable}
\usepackage{graphicx}
\setlength{\LTcapwidth}{\textwidth}
"""


def escape(text: object) -> str:
    """Escape LaTeX special characters in free text (names of models, datasets, files)."""
    return "".join(_SPECIALS.get(char, char) for char in str(text))


def is_number(value: object) -> bool:
    """True for a finite int/float (NaN, None and pandas NA are not numbers)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def number(value: object, decimals: int) -> str:
    """``value`` with fixed decimals, or an em dash when it is not a number."""
    return f"{value:.{decimals}f}" if is_number(value) else DASH


def signed(value: float, decimals: int) -> str:
    """A difference in math mode with an explicit sign: ``$+0.12$`` / ``$-0.30$``."""
    text = f"{value:+.{decimals}f}"
    if float(text) == 0:  # no "+0.00" or "-0.00"
        text = f"{0:.{decimals}f}"
    return f"${text}$"


def count(value: object) -> str:
    """A parameter count in engineering style: ``950``, ``66.3k``, ``1.05M``."""
    if not is_number(value):
        return DASH
    n = float(value)  # type: ignore[arg-type]
    if abs(n) >= 1e6:
        return f"{n / 1e6:.2f}M"
    if abs(n) >= 1e3:
        return f"{n / 1e3:.1f}k"
    return f"{n:.0f}"


def significant(value: object) -> str:
    """A positive quantity with about three significant digits (``0.912``, ``12.4``, ``301``)."""
    if not is_number(value):
        return DASH
    v = float(value)  # type: ignore[arg-type]
    if v == int(v) and abs(v) < 1e6:
        return f"{int(v)}"
    for limit, decimals in ((1, 3), (10, 2), (100, 1)):
        if abs(v) < limit:
            return f"{v:.{decimals}f}"
    return f"{v:.0f}"


def mark(index: int) -> str:
    """The ``index``-th footnote letter: a … z, aa, ab, …"""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return letters


def superscript(letter: str) -> str:
    """A footnote mark as it appears after a cell."""
    return f"$^{{\\mathrm{{{letter}}}}}$"


def seeds_phrase(seeds: Iterable[int | str]) -> str:
    """``seed 1`` / ``seeds 0, 2``."""
    items = [str(s) for s in seeds]
    return f"seed{'s' if len(items) > 1 else ''} {', '.join(items)}"


def stack(top: str, bottom: str) -> str:
    """Two lines in one table cell (a nested, padding-free tabular aligned on its first line)."""
    return f"\\begin{{tabular}}[t]{{@{{}}c@{{}}}}{top}\\\\{bottom}\\end{{tabular}}"


def fit_width(body: str) -> str:
    """Shrink a tabular to the line width only when it is wider (graphicx ``\\resizebox``)."""
    return (
        f"\\resizebox{{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}}{{!}}{{%\n{body}}}\n"
    )


def figure(path: str, caption: str, height: float) -> str:
    """A figure of the graphic at ``path`` (relative to the .tex file), at most the line width and
    ``height`` times the text height; a framed note instead when the file is absent at compile
    time, so the document always compiles."""
    graphic = (
        f"\\includegraphics[width=\\linewidth,height={height}\\textheight,keepaspectratio]"
        f"{{{path}}}"
    )
    note = f"\\fbox{{figure not built: \\texttt{{{escape(path)}}}}}"
    return (
        "\\begin{figure}[H]\n\\centering\n"
        f"\\IfFileExists{{{path}}}{{{graphic}}}{{{note}}}\n"
        f"\\caption{{{caption}}}\n\\end{{figure}}\n"
    )


def document(title: str, intro: str, sections: Iterable[str]) -> str:
    """A standalone article with the given title, an introductory paragraph and sections."""
    parts = [PREAMBLE, "\\begin{document}\n", f"\\section*{{{title}}}\n", f"{intro}\n\n"]
    parts += [f"{section}\n" for section in sections]
    parts.append("\\end{document}\n")
    return "".join(parts)
