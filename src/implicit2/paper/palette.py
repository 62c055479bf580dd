"""One colour per filter (and baseline) and one line style per layer kind, for every figure.

Colours are the Okabe–Ito colour-blind-safe set. A DEQ is drawn solid, its explicit twin dashed,
baselines dotted; bars use hatching for the same distinction so that figures read in grey print.
"""

from __future__ import annotations

import zlib
from typing import Literal

from implicit2.paper.names import ModelName

FILTER_COLOURS: dict[str, str] = {
    "fourier": "#0072B2",  # blue
    "gabor": "#D55E00",  # vermillion
    "siren": "#009E73",  # bluish green
}
BASELINE_COLOURS: dict[str, str] = {
    "siren": "#CC79A7",  # reddish purple
    "ffn": "#E69F00",  # orange
}
#: For filters or models this module does not know; picked by a stable hash of the name.
FALLBACK_COLOURS: tuple[str, ...] = ("#56B4E9", "#F0E442", "#000000", "#999999")

LineStyle = Literal["-", "--", ":", "-."]
LINESTYLES: dict[str, LineStyle] = {"deq": "-", "mfn": "--", "baseline": ":", "other": "-."}
HATCHES: dict[str, str] = {"deq": "", "mfn": "///", "baseline": "..", "other": "xx"}
LAYER_LABELS: dict[str, str] = {
    "deq": "DEQ (implicit)",
    "mfn": "explicit",
    "baseline": "baseline",
    "other": "other",
}


def _style_key(model: ModelName) -> str:
    if model.family in ("deq", "mfn"):
        return model.family
    return "baseline" if model.is_baseline else "other"


def colour_for(model: ModelName) -> str:
    """The colour of a model: its filter's colour, its baseline's colour, or a stable fallback."""
    if model.family in ("deq", "mfn") and model.filter in FILTER_COLOURS:
        return FILTER_COLOURS[model.filter]
    if model.is_baseline:
        return BASELINE_COLOURS[model.family]
    key = model.filter if model.filter is not None else model.name
    return FALLBACK_COLOURS[zlib.crc32(key.encode("utf-8")) % len(FALLBACK_COLOURS)]


def linestyle_for(model: ModelName) -> LineStyle:
    """Solid for a DEQ, dashed for its explicit twin, dotted for baselines."""
    return LINESTYLES[_style_key(model)]


def hatch_for(model: ModelName) -> str:
    """Bar hatching: none for a DEQ, diagonal for explicit, dots for baselines."""
    return HATCHES[_style_key(model)]


def layer_label(model: ModelName) -> str:
    """Legend text for the line style / hatch of a model."""
    return LAYER_LABELS[_style_key(model)]


def colour_label(model: ModelName) -> str:
    """Legend text for the colour of a model (the filter or the baseline)."""
    return model.label
