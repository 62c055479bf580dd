"""implicit2: Deep Equilibrium implicit neural representations ((Implicit)², NeurIPS 2021)."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

#: The root of the checkout holding this package (src/implicit2/..): pyproject.toml, where the
#: version is defined, and requirements/, the lock (neither exists beside an installed wheel).
CHECKOUT = Path(__file__).resolve().parents[2]
_PYPROJECT = CHECKOUT / "pyproject.toml"


def _version() -> str:
    """pyproject.toml's version: read from the checkout when this is one (jobs import src/ without
    installing it, and an editable install's metadata lags behind an edit), else the installed
    package's metadata."""
    try:
        text = _PYPROJECT.read_text(encoding="utf-8")
    except OSError:
        text = ""
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    if project and 'name = "implicit2"' in project.group(1):
        found = re.search(r'^version\s*=\s*"([^"]+)"', project.group(1), re.MULTILINE)
        if found:
            return found.group(1)
    try:
        return importlib.metadata.version("implicit2")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


__version__ = _version()
