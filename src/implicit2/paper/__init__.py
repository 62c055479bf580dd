"""The paper's outputs: per-task CSVs, the paper's claims checked (``claims.csv``),
``paper.tex`` and matplotlib figures.

Public API:
    - :func:`write_tables` — metrics.json files → ``{task}.csv``, ``claims.csv``/``.html`` and
      ``paper.tex`` (claims first, then each task's tables and figures).
    - :func:`check_claims` — the claim rows (claim, task, evidence, verdict) of a
      :class:`Collection`; the rules are in docs/claims.md.
    - :func:`write_figures` — one task's ``curves``, ``cost``, ``reconstructions`` (.pdf, .png).
    - :func:`collect` → :class:`Collection` (runs and metric values as pandas frames),
      :func:`summarize` (one task's CSV frame), :func:`load_reference` → :class:`Reference`.

Nothing here imports torch: these modules run in seconds on a laptop.
"""

from implicit2.paper.claims import check_claims
from implicit2.paper.collect import Collection, collect
from implicit2.paper.figures import write_figures
from implicit2.paper.reference import Reference, load_reference
from implicit2.paper.summary import summarize, summary_columns
from implicit2.paper.tables import write_tables

__all__ = [
    "Collection",
    "Reference",
    "check_claims",
    "collect",
    "load_reference",
    "summarize",
    "summary_columns",
    "write_figures",
    "write_tables",
]
