"""Model-name parsing, paper row order, the palette and LaTeX primitives."""

from __future__ import annotations

import pytest

from implicit2.paper import latex, palette
from implicit2.paper.names import model_sort_key, parse_model, parse_run_path, task_sort_key


def test_parse_model() -> None:
    deq = parse_model("deq-gabor-4L256D")
    assert (deq.family, deq.filter, deq.layers, deq.width) == ("deq", "gabor", 4, 256)
    assert (deq.size, deq.label, deq.layer_kind) == ("4L256D", "Gabor", "DEQ")
    mfn = parse_model("mfn-siren-1L512D")
    assert (mfn.label, mfn.layer_kind, mfn.group) == ("SIREN-like", "explicit", "1L512D")
    siren = parse_model("siren-3L256D")
    assert (siren.family, siren.label, siren.is_baseline, siren.group) == (
        "siren",
        "SIREN",
        True,
        "baselines",
    )
    other = parse_model("my-new-thing")
    assert (other.family, other.size, other.label) == ("other", "other", "my-new-thing")


def test_paper_row_order() -> None:
    names = [
        "ffn-3L256D",
        "mfn-gabor-4L256D",
        "deq-siren-1L256D",
        "weird",
        "deq-fourier-1L512D",
        "mfn-fourier-1L256D",
        "siren-3L256D",
        "deq-fourier-1L256D",
        "deq-gabor-4L256D",
        "deq-newfilter-1L256D",
    ]
    assert sorted(names, key=model_sort_key) == [
        "deq-fourier-1L256D",
        "mfn-fourier-1L256D",
        "deq-siren-1L256D",
        "deq-fourier-1L512D",
        "deq-gabor-4L256D",
        "mfn-gabor-4L256D",
        "siren-3L256D",
        "ffn-3L256D",
        "deq-newfilter-1L256D",  # outside implicit2.names' grammar: family other, sorted last
        "weird",
    ]
    assert sorted(["occupancy", "zzz", "audio", "image_representation"], key=task_sort_key) == [
        "image_representation",
        "audio",
        "occupancy",
        "zzz",
    ]


def test_parse_run_path() -> None:
    path = "results/runs/video/cat/deq-fourier-1L1024D/seed3/metrics.json"
    assert parse_run_path(path) == ("video", "cat", "deq-fourier-1L1024D", 3)
    with pytest.raises(ValueError, match=r"metrics\.json"):
        parse_run_path("results/metrics.json")


def test_palette_same_colour_per_filter_and_style_per_layer() -> None:
    deq, mfn = parse_model("deq-fourier-1L256D"), parse_model("mfn-fourier-4L512D")
    assert palette.colour_for(deq) == palette.colour_for(mfn)
    assert palette.linestyle_for(deq) == "-" and palette.linestyle_for(mfn) == "--"
    assert palette.hatch_for(deq) != palette.hatch_for(mfn)
    colours = {palette.colour_for(parse_model(f"deq-{f}-1L256D")) for f in ("fourier", "gabor")}
    colours |= {palette.colour_for(parse_model(m)) for m in ("deq-siren-1L256D", "siren-1L256D")}
    assert len(colours) == 4  # SIREN-like filter and SIREN baseline differ
    unknown = parse_model("deq-newfilter-1L256D")
    assert palette.colour_for(unknown) == palette.colour_for(parse_model("mfn-newfilter-4L64D"))


def test_latex_escape_and_numbers() -> None:
    assert latex.escape("cel_eba & 50% #1 {x} ~^\\") == (
        r"cel\_eba \& 50\% \#1 \{x\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
    )
    assert latex.escape("deq--fourier") == "deq-{}-{}fourier"
    assert latex.number(float("nan"), 2) == latex.DASH
    assert latex.number(29.6666, 2) == "29.67"
    assert latex.signed(-0.304, 2) == "$-0.30$" and latex.signed(0.001, 2) == "$0.00$"
    assert latex.signed(1.5, 1) == "$+1.5$"
    assert (latex.count(950), latex.count(66_305), latex.count(1_050_000)) == (
        "950",
        "66.3k",
        "1.05M",
    )
    assert [latex.mark(i) for i in (0, 25, 26, 27)] == ["a", "z", "aa", "ab"]
    assert latex.seeds_phrase([1]) == "seed 1" and latex.seeds_phrase([0, 2]) == "seeds 0, 2"
