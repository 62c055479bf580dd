"""The claims table for people: the "Claims" section of ``paper.tex`` and ``claims.html``.

One block per claim: its statement, then a line per task (``all`` first) with the verdict and the
evidence. The numbers and words come from :func:`implicit2.paper.claims.check_claims` unchanged.
"""

from __future__ import annotations

import html

from implicit2.paper import latex
from implicit2.paper.claims import ALL_TASKS, CLAIMS, ClaimRow
from implicit2.paper.names import task_title

INTRO = (
    "Each claim of the paper is checked on the runs behind this document, one comparison per "
    "dataset (a cell). Verdict: supported or not supported when every cell agrees, mixed when "
    "some cells hold and others fail, not enough runs when a cell has no finished run or its "
    "difference lies within seed noise. With three or more seeds the 95% t-interval over seeds "
    "decides; with fewer there is no seed spread, the value alone decides and the evidence says "
    "so. docs/claims.md gives every rule."
)
_COLUMNS = (
    r"@{}>{\raggedright\arraybackslash}p{0.16\linewidth}"
    r">{\raggedright\arraybackslash}p{0.14\linewidth}"
    r">{\raggedright\arraybackslash}p{0.62\linewidth}@{}"
)


def _task_label(task: str) -> str:
    return "All tasks" if task == ALL_TASKS else task_title(task)


def _grouped(rows: list[ClaimRow]) -> dict[str, list[ClaimRow]]:
    groups: dict[str, list[ClaimRow]] = {}
    for row in rows:
        groups.setdefault(row.claim, []).append(row)
    return groups


def render_claims_latex(rows: list[ClaimRow], scale_sentence: str) -> str:
    """The ``Claims`` section: an introduction and a ``longtable`` of every claim row."""
    lines = [
        r"\section*{Claims}",
        f"{latex.escape(INTRO)} {latex.escape(scale_sentence)}",
        "",
    ]
    if not rows:
        return "\n".join([*lines, "No runs were given, so no claim could be checked.", ""])
    lines += [
        r"\begin{small}",
        f"\\begin{{longtable}}{{{_COLUMNS}}}",
        r"\toprule",
        r"Task & Verdict & Evidence \\",
        r"\midrule",
        r"\endhead",
        r"\bottomrule",
        r"\endlastfoot",
    ]
    for number, (claim, group) in enumerate(_grouped(rows).items()):
        if number:
            lines.append(r"\midrule")
        statement = latex.escape(CLAIMS.get(claim, ""))
        lines.append(
            f"\\multicolumn{{3}}{{@{{}}p{{\\linewidth}}@{{}}}}{{\\textbf{{{latex.escape(claim)}}}: "
            f"{statement}}} \\\\*"
        )
        for row in group:
            cells = [
                latex.escape(_task_label(row.task)),
                f"\\textbf{{{latex.escape(row.verdict)}}}",
                latex.escape(row.evidence),
            ]
            lines.append(" & ".join(cells) + r" \\")
    lines += [r"\end{longtable}", r"\end{small}", ""]
    return "\n".join(lines)


def render_claims_html(rows: list[ClaimRow], scale_sentence: str) -> str:
    """A standalone HTML page with the same table (what ``snakemake --report`` shows first)."""
    body = []
    for claim, group in _grouped(rows).items():
        body.append(
            f'<tr class="claim"><th colspan="3">{html.escape(claim)}: '
            f"{html.escape(CLAIMS.get(claim, ''))}</th></tr>"
        )
        body += [
            f"<tr><td>{html.escape(_task_label(row.task))}</td>"
            f"<td><b>{html.escape(row.verdict)}</b></td><td>{html.escape(row.evidence)}</td></tr>"
            for row in group
        ]
    table = (
        "<table>\n<tr><th>Task</th><th>Verdict</th><th>Evidence</th></tr>\n"
        + "\n".join(body)
        + "\n</table>"
        if rows
        else "<p>No runs were given, so no claim could be checked.</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>(Implicit)^2: claims checked from the runs</title>\n<style>\n"
        "body { font-family: sans-serif; margin: 1.5em; }\n"
        "table { border-collapse: collapse; }\n"
        "td, th { border-bottom: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left;"
        " vertical-align: top; }\n"
        "tr.claim th { background: #eee; }\n</style>\n</head>\n<body>\n"
        "<h1>(Implicit)<sup>2</sup>: the paper's claims, checked from the runs</h1>\n"
        f"<p>{html.escape(INTRO)} {html.escape(scale_sentence)}</p>\n{table}\n</body>\n</html>\n"
    )
