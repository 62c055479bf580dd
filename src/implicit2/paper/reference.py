"""The paper's printed values (``config/paper_reference.yaml``): load, validate, look up.

Structure: task → dataset → model → metric → value; any level may be empty or null. The file is
validated against ``workflow/schemas/paper_reference.schema.yaml`` when that schema can be found
(beside the package in a source checkout, or under the working directory), and always walked by a
built-in structural check, so a malformed file raises ``ValueError`` naming the file and the key.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

log = logging.getLogger(__name__)

SCHEMA_NAME = "paper_reference.schema.yaml"
_SCHEMA_CANDIDATES: tuple[Path, ...] = (
    Path(__file__).resolve().parents[3] / "workflow" / "schemas" / SCHEMA_NAME,
    Path("workflow") / "schemas" / SCHEMA_NAME,
)


@dataclass(frozen=True)
class Reference:
    """Reference values keyed by (task, dataset, model, metric).

    Attributes:
        values: the non-null values.
        source: the file they came from (None for an empty reference).
    """

    values: dict[tuple[str, str, str, str], float] = field(default_factory=dict)
    source: Path | None = None

    def get(self, task: str, dataset: str, model: str, metric: str) -> float | None:
        """The paper's value for one cell, or None when it is not given."""
        return self.values.get((task, dataset, model, metric))

    def __len__(self) -> int:
        return len(self.values)


def find_schema() -> Path | None:
    """The reference schema file, or None when neither candidate location has it."""
    return next((path for path in _SCHEMA_CANDIDATES if path.is_file()), None)


def _key_path(parts: Any) -> str:
    return " → ".join(str(part) for part in parts) or "(top level)"


def _validate_schema(path: Path, data: Any, schema_path: Path) -> None:
    schema = yaml.safe_load(schema_path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        keys = list(error.absolute_path)
        if "propertyNames" in error.absolute_schema_path:  # the key itself is wrong
            keys.append(error.instance)
        raise ValueError(
            f"{path}: invalid reference at key '{_key_path(keys)}': "
            f"{error.message} (see {schema_path})"
        )


def _flatten(path: Path, data: Any) -> dict[tuple[str, str, str, str], float]:
    """Walk task → dataset → model → metric → value, checking types on the way."""
    values: dict[tuple[str, str, str, str], float] = {}

    def mapping(node: Any, keys: tuple[str, ...]) -> dict[str, Any]:
        if node is None:
            return {}
        if not isinstance(node, dict):
            raise ValueError(
                f"{path}: invalid reference at key '{_key_path(keys)}': expected a mapping "
                f"(task → dataset → model → metric → value), got {type(node).__name__}"
            )
        for key in node:
            if not isinstance(key, str):
                raise ValueError(
                    f"{path}: invalid reference at key '{_key_path((*keys, key))}': "
                    "keys must be strings (quote it)"
                )
        return node

    for task, datasets in mapping(data, ()).items():
        for dataset, models in mapping(datasets, (task,)).items():
            for model, metrics in mapping(models, (task, dataset)).items():
                for metric, value in mapping(metrics, (task, dataset, model)).items():
                    if value is None:
                        continue
                    number_ok = isinstance(value, int | float) and not isinstance(value, bool)
                    if not number_ok or not math.isfinite(value):
                        keys = (task, dataset, model, metric)
                        raise ValueError(
                            f"{path}: invalid reference at key '{_key_path(keys)}': "
                            f"expected a number or null, got {value!r}"
                        )
                    values[(task, dataset, model, metric)] = float(value)
    return values


def load_reference(path: str | Path | None, schema: str | Path | None = None) -> Reference:
    """Load and validate a reference file; ``None`` gives an empty reference.

    Args:
        path: the YAML file.
        schema: the JSON schema (YAML); default: :func:`find_schema`.

    Raises:
        FileNotFoundError: ``path`` (or an explicit ``schema``) does not exist.
        ValueError: the file is not YAML or does not fit the schema; the message names the key.
    """
    if path is None:
        return Reference()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: reference file not found (see config/README.md)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from error
    schema_path = Path(schema) if schema is not None else find_schema()
    if schema_path is None:
        log.warning("%s not found; checking %s for structure only", SCHEMA_NAME, path)
    elif not schema_path.is_file():
        raise FileNotFoundError(f"{schema_path}: reference schema not found")
    else:
        _validate_schema(path, data, schema_path)
    values = _flatten(path, data)
    log.info("%s: %d reference values", path, len(values))
    return Reference(values=values, source=path)
