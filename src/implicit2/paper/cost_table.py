"""The cost table of one task: parameters, time per training step, peak memory, solver steps.

One row per dataset × model (a ``longtable``, so long grids break across pages), in the same row
order as the results table; numbers are means over the finished runs of each cell.
"""

from __future__ import annotations

import pandas as pd

from implicit2.paper import latex
from implicit2.paper.names import model_sort_key, parse_model, task_title

HEADER = (
    r"Dataset & Size & Model & Layer & Params & ms/step & Peak MiB"
    r" & Iters (first) & Iters (eval) \\"
)
_MIB = 2**20


def _caption(task: str) -> str:
    return (
        f"{latex.escape(task_title(task))}: training cost (means over finished runs). "
        "Params: trainable parameters; ms/step: median wall-clock time of one training step; "
        "Peak MiB: peak training memory; Iters: fixed-point solver iterations of the first "
        f"training step and of evaluation. {latex.DASH}: no finished run or not recorded."
    )


def render_cost_table(summary: pd.DataFrame, task: str) -> str:
    """A ``longtable`` with the cost of every model of one task."""
    lines = [
        r"\begin{small}",
        r"\begin{longtable}{llllrrrrr}",
        f"\\caption{{{_caption(task)}}}\\label{{tab:{task.replace('_', '-')}-cost}}\\\\",
        r"\toprule",
        HEADER,
        r"\midrule",
        r"\endfirsthead",
        r"\toprule",
        HEADER,
        r"\midrule",
        r"\endhead",
        r"\bottomrule",
        r"\endlastfoot",
    ]
    datasets = list(dict.fromkeys(summary["dataset"]))
    for number, dataset in enumerate(datasets):
        if number:
            lines.append(r"\midrule")
        rows = summary[summary["dataset"] == dataset].to_dict("records")
        rows.sort(key=lambda r: model_sort_key(r["model"]))
        for index, record in enumerate(rows):
            parsed = parse_model(record["model"])
            cells = [
                latex.escape(dataset) if index == 0 else "",
                parsed.size if parsed.family != "other" else "",
                latex.escape(parsed.label),
                parsed.layer_kind,
                latex.count(record["params"]),
                latex.significant(record["step_seconds_median"] * 1e3),
                latex.significant(record["peak_memory_bytes"] / _MIB),
                latex.significant(record["solver_steps_first"]),
                latex.significant(record["solver_steps_eval"]),
            ]
            lines.append(" & ".join(cells) + r" \\")
    lines += [r"\end{longtable}", r"\end{small}"]
    return "\n".join(lines) + "\n"
