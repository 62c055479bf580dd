"""The paper-style results table of one task, rendered from its summary frame.

Rows: models grouped by size (``1L256D`` …); inside a size, per filter the DEQ row directly above
its explicit twin; then the baselines. Columns: datasets (occupancy: IoU easy / hard under each).
Cells: mean ± std, the best mean per column in bold, the paper's value and the difference in small
type, and "---" with a lettered note for cells without a finished run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from implicit2.paper import latex
from implicit2.paper.names import (
    METRIC_LABELS,
    headline_metrics,
    model_sort_key,
    parse_model,
    task_title,
)

METRIC_DECIMALS: dict[str, int] = {"psnr": 2, "iou_easy": 3, "iou_hard": 3}
METRIC_CAPTIONS: dict[str, str] = {
    "psnr": "PSNR (dB)",
    "iou_easy": "IoU on uniformly sampled (easy) and near-surface (hard) test points",
}


@dataclass(frozen=True)
class Note:
    """A lettered note below a table."""

    letter: str
    text: str


def _decimals(metric: str) -> int:
    return METRIC_DECIMALS.get(metric, 3)


def _note_text(record: dict[str, Any]) -> str | None:
    """Why a cell is empty or partial, or None when every run finished."""
    reasons = []
    if record["diverged_seeds"]:
        reasons.append(f"diverged ({latex.seeds_phrase(record['diverged_seeds'].split())})")
    if record["missing_seeds"]:
        reasons.append(f"missing ({latex.seeds_phrase(record['missing_seeds'].split())})")
    counts = [record[c] for c in record if c.endswith("_count")]
    if record["n_ok"] and not any(counts):
        reasons.append("finished without a metric value")
    if not reasons:
        return None
    where = f"{latex.escape(record['dataset'])} / {latex.escape(record['model'])}"
    if record["n_ok"] and any(counts):
        return (
            f"{where}: mean over {record['n_ok']} of {record['n_runs']} runs; {'; '.join(reasons)}."
        )
    return f"{where}: no result; {'; '.join(reasons)}."


def _best(records: list[dict[str, Any]], dataset: str, metric: str) -> float | None:
    """The highest displayed (rounded) mean in one column."""
    means = [
        round(r[f"{metric}_mean"], _decimals(metric))
        for r in records
        if r["dataset"] == dataset and r[f"{metric}_count"] and latex.is_number(r[f"{metric}_mean"])
    ]
    return max(means) if means else None


def _cell(record: dict[str, Any], metric: str, best: float | None, letter: str | None) -> str:
    decimals = _decimals(metric)
    mean, std = record[f"{metric}_mean"], record[f"{metric}_std"]
    has_value = bool(record[f"{metric}_count"]) and latex.is_number(mean)
    if has_value:
        text = latex.number(mean, decimals)
        if latex.is_number(std):
            text += f" $\\pm$ {latex.number(std, decimals)}"
        if best is not None and round(mean, decimals) == best:
            text = f"\\textbf{{{text}}}"
    else:
        text = latex.DASH
    if letter is not None:
        text += latex.superscript(letter)
    ref, diff = record[f"{metric}_ref"], record[f"{metric}_diff"]
    if latex.is_number(ref):
        inner = f"ref {ref:g}"
        if has_value and latex.is_number(diff):
            inner += f", {latex.signed(diff, decimals)}"
        # Stacked under the value so that wide tables need less shrinking.
        text = latex.stack(text, f"{{\\scriptsize ({inner})}}")
    return text


def _row_labels(model: str, previous: str | None) -> tuple[str, str, str]:
    """(Size, Model, Layer) cells; size and filter are written once per block / pair."""
    parsed = parse_model(model)
    before = parse_model(previous) if previous is not None else None
    if parsed.is_baseline:
        return parsed.size, parsed.label, "baseline"
    if parsed.family == "other":
        return "", latex.escape(model), "other"
    same_group = before is not None and before.group == parsed.group
    same_filter = same_group and before is not None and before.filter == parsed.filter
    size = "" if same_group else parsed.size
    label = "" if same_filter else latex.escape(parsed.label)
    return size, label, parsed.layer_kind


def _header(datasets: list[str], metrics: tuple[str, ...]) -> list[str]:
    lead = "Size & Model & Layer"
    if len(metrics) == 1:
        return [lead + "".join(f" & {latex.escape(d)}" for d in datasets) + r" \\"]
    width = len(metrics)
    spans = "".join(f" & \\multicolumn{{{width}}}{{c}}{{{latex.escape(d)}}}" for d in datasets)
    rules = "".join(
        f"\\cmidrule(lr){{{4 + i * width}-{3 + (i + 1) * width}}}" for i in range(len(datasets))
    )
    labels = "".join(f" & {METRIC_LABELS.get(m, latex.escape(m))}" for m in metrics) * len(datasets)
    return [lead + spans + r" \\", rules, " & &" + labels + r" \\"]


def _caption(task: str, summary: pd.DataFrame, metrics: tuple[str, ...], notes: bool) -> str:
    datasets = list(dict.fromkeys(summary["dataset"]))
    counts = []
    for dataset in datasets:
        rows = summary[summary["dataset"] == dataset]
        seeds = {s for text in rows["seeds"] for s in text.split()}
        signals = int(rows["n_signals"].max()) if len(rows) else 0
        counts.append(f"{latex.escape(dataset)} ${signals} \\times {len(seeds)}$")
    what = METRIC_CAPTIONS.get(metrics[0], latex.escape(", ".join(metrics)))
    text = (
        f"{latex.escape(task_title(task))}: {what}, mean $\\pm$ sample standard deviation over "
        "signals and seeds; best mean per column in bold. "
        f"Values per cell (signals $\\times$ seeds): {', '.join(counts)}."
    )
    if summary[[f"{m}_ref" for m in metrics]].notna().to_numpy().any():
        text += " Small type: the paper's value and our difference (ours $-$ paper)."
    if notes:
        text += f" {latex.DASH}: no finished run (see the notes below the table)."
    return text


def render_results_table(summary: pd.DataFrame, task: str) -> str:
    """The LaTeX ``table`` of one task's headline metrics (see the module docstring)."""
    metrics = headline_metrics(task)
    records = summary.to_dict("records")
    by_cell = {(r["dataset"], r["model"]): r for r in records}
    datasets = list(dict.fromkeys(summary["dataset"]))
    models = sorted(dict.fromkeys(summary["model"]), key=model_sort_key)
    best = {(d, m): _best(records, d, m) for d in datasets for m in metrics}
    notes: list[Note] = []
    body: list[str] = []
    previous: str | None = None
    for model in models:
        if previous is not None and parse_model(previous).group != parse_model(model).group:
            body.append(r"\midrule")
        cells = list(_row_labels(model, previous))
        for dataset in datasets:
            record = by_cell.get((dataset, model))
            if record is None:  # not part of the grid for this dataset
                cells += [""] * len(metrics)
                continue
            letter = None
            text = _note_text(record)
            if text is not None:
                letter = latex.mark(len(notes))
                notes.append(Note(letter, text))
            cells += [_cell(record, m, best[(dataset, m)], letter) for m in metrics]
        body.append(" & ".join(cells) + r" \\")
        previous = model
    columns = "lll" + "c" * (len(datasets) * len(metrics))
    tabular = "\n".join(
        [
            f"\\begin{{tabular}}{{{columns}}}",
            r"\toprule",
            *_header(datasets, metrics),
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            "",
        ]
    )
    parts = [
        r"\begin{table}[H]",  # float.sty: stay in order, before the cost table
        r"\centering",
        f"\\caption{{{_caption(task, summary, metrics, bool(notes))}}}",
        f"\\label{{tab:{task.replace('_', '-')}}}",
        r"\small",
        latex.fit_width(tabular).rstrip("\n"),
    ]
    if notes:
        parts += [
            r"\par\smallskip",
            r"\begin{minipage}{\linewidth}\footnotesize\raggedright",
            *(f"{latex.superscript(n.letter)} {n.text}\\\\" for n in notes),
            r"\end{minipage}",
        ]
    parts.append(r"\end{table}")
    return "\n".join(parts) + "\n"
