"""The efficiency grid (``implicit2 bench --grid``): one JSON per model and the figure of time
and memory per step against parameter count, DEQ against explicit, in the tables' palette."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from implicit2 import io as atomic
from implicit2.models import parse_model_name
from implicit2.paper import palette
from implicit2.paper.names import parse_model


def grid_models(filters: list[str], sizes: list[str]) -> list[str]:
    """The DEQ and explicit MFN of every filter × size (deq-fourier-1L64D, mfn-fourier-1L64D …)."""
    names = [f"{family}-{f}-{size}" for size in sizes for f in filters for family in ("deq", "mfn")]
    for name in names:
        parse_model_name(name)
    return names


def write_grid(payload: dict[str, Any], out_dir: Path) -> list[Path]:
    """One ``{model}.json`` per model (machine and settings included) and the efficiency figure."""
    written = []
    for name, figures in payload["models"].items():
        path = out_dir / f"{name}.json"
        one = {"machine": payload["machine"], "settings": payload["settings"]}
        atomic.write_json(path, one | {"model": name, "figures": figures})
        written.append(path)
    written += plot_efficiency(payload, out_dir / "efficiency")
    return written


def plot_efficiency(payload: dict[str, Any], stem: Path) -> list[Path]:
    """Time per step and memory per step against parameter count, DEQ (solid) vs explicit (dashed).

    Writes ``stem``.pdf and ``stem``.png: the pipeline's version of the paper's efficiency figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series: dict[tuple[str, str], list[tuple[int, float, float, str]]] = {}
    first_of: dict[tuple[str, str], str] = {}
    for name, figures in payload["models"].items():
        spec = parse_model_name(name)
        key = (spec.family, spec.filter or spec.family)
        first_of.setdefault(key, name)
        point = (
            figures["params"],
            1e3 * figures["step_seconds_median"],
            figures["peak_memory_bytes"] / 2**20,
            name.split("-")[-1],
        )
        series.setdefault(key, []).append(point)
    figure = Figure(figsize=(9.0, 3.6), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    time_axis, memory_axis = figure.subplots(1, 2)
    for key, points in sorted(series.items()):
        points.sort()
        params = [p[0] for p in points]
        model = parse_model(first_of[key])
        style = {
            "color": palette.colour_for(model),
            "linestyle": palette.linestyle_for(model),
            "marker": "o" if model.family == "deq" else "s",
            "label": f"{palette.layer_label(model)} {palette.colour_label(model)}",
        }
        time_axis.plot(params, [p[1] for p in points], **style)
        memory_axis.plot(params, [p[2] for p in points], **style)
        for axis, column in ((time_axis, 1), (memory_axis, 2)):
            for point in points:
                axis.annotate(point[3], (point[0], point[column]), fontsize=6, alpha=0.7)
    machine, settings = payload["machine"], payload["settings"]
    memory_label = (
        "peak memory (MiB)"
        if machine["device"].startswith("cuda")
        else ("saved for backward (MiB)")
    )
    params = [p[0] for points in series.values() for p in points]
    for axis, label in ((time_axis, "time per step (ms)"), (memory_axis, memory_label)):
        if max(params) > 10 * min(params):  # a log axis over less than a decade has no labels
            axis.set_xscale("log")
        axis.set_xlabel("parameters")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
    time_axis.legend(fontsize=7)
    figure.suptitle(
        f"{settings['image']} {settings['size']}², {settings['steps']} steps, "
        f"{machine['device_name']} ({machine['threads']} CPU threads)",
        fontsize=9,
    )
    written = []
    for suffix in ("pdf", "png"):
        path = stem.with_suffix(f".{suffix}")
        with atomic.atomic_path(path) as temp:
            figure.savefig(temp, format=suffix)
        written.append(path)
    return written
