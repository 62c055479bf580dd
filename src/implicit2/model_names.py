"""The model-name grammar: ``deq-{filter}-{L}L{D}D``, ``mfn-{filter}-{L}L{D}D``, ``siren-{L}L{D}D``
and ``ffn-{L}L{D}D`` with filter ∈ {fourier, gabor, siren}.

One definition for the library, the config and the Snakemake wildcard constraint; standard
library only, so the Snakefile can import it without torch.
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: ``{L}L{D}D``: L ≥ 1 layers of width D ≥ 1.
SIZE_PATTERN = r"[1-9][0-9]*L[1-9][0-9]*D"
#: The grammar as a regex without groups or anchors (the Snakemake wildcard constraint).
MODEL_NAME_REGEX = rf"(?:(?:deq|mfn)-(?:fourier|gabor|siren)|siren|ffn)-{SIZE_PATTERN}"
MODEL_NAME_PATTERN = re.compile(
    r"^(?:(?P<family>deq|mfn)-(?P<filter>fourier|gabor|siren)|(?P<baseline>siren|ffn))"
    r"-(?P<layers>[1-9][0-9]*)L(?P<width>[1-9][0-9]*)D$"
)
MODEL_GRAMMAR = (
    "deq-{fourier|gabor|siren}-{L}L{D}D, mfn-{fourier|gabor|siren}-{L}L{D}D, siren-{L}L{D}D or "
    "ffn-{L}L{D}D (L, D ≥ 1), e.g. deq-fourier-1L256D"
)


class ModelSpec(NamedTuple):
    """A parsed model name."""

    family: str  # deq, mfn, siren or ffn
    filter: str | None  # fourier, gabor or siren for deq/mfn, else None
    layers: int
    width: int

    @property
    def is_deq(self) -> bool:
        """True for the implicit (DEQ) family."""
        return self.family == "deq"


def parse_model_name(name: str) -> ModelSpec:
    """Parse a model name of the grammar :data:`MODEL_GRAMMAR`.

    Raises:
        ValueError: the name does not match; the message gives the grammar.
    """
    match = MODEL_NAME_PATTERN.match(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"{name!r} is not a model name; valid: {MODEL_GRAMMAR}")
    family = match["family"] or match["baseline"]
    return ModelSpec(family, match["filter"], int(match["layers"]), int(match["width"]))
