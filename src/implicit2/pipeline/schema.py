"""The config schema: loading it, converting command-line strings to its types, filling its
defaults while validating, and one readable line per schema error."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import validators

from implicit2.names import TASK_NAMES
from implicit2.pipeline.defaults import load_defaults

#: The schema, in the source checkout (the Snakefile passes its own path explicitly).
SCHEMA_PATH = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


def load_schema(path: str | Path | None = None) -> dict[str, Any]:
    """Read the config schema (YAML); default: ``workflow/schemas/config.schema.yaml``."""
    schema_path = Path(path) if path is not None else SCHEMA_PATH
    if not schema_path.is_file():
        raise FileNotFoundError(
            f"{schema_path}: config schema not found; run from the source checkout or pass the "
            "schema path (workflow/schemas/config.schema.yaml)"
        )
    schema = yaml.safe_load(schema_path.read_text(encoding="utf-8"))
    _fill_task_names(schema)
    _fill_defaults(schema)
    return schema


def _fill_task_names(schema: dict[str, Any]) -> None:
    """Put the task names of :data:`implicit2.names.TASK_NAMES` where the schema lists tasks: the
    ``task_name`` enum, the default of ``tasks`` and one ``task_settings`` block per task."""
    schema["$defs"]["task_name"]["enum"] = list(TASK_NAMES)
    properties = schema["properties"]
    properties["tasks"]["default"] = list(TASK_NAMES)
    properties["task_settings"]["properties"] = {
        name: {"$ref": "#/$defs/task_block", "default": {}} for name in TASK_NAMES
    }


def _fill_defaults(schema: dict[str, Any]) -> None:
    """Put the values of :mod:`implicit2.pipeline.defaults` in as the ``default`` of ``device``,
    of every ``train`` key and of every stage's ``resources`` keys."""
    defaults = load_defaults()
    properties = schema["properties"]
    properties["device"]["default"] = defaults["device"]
    properties["train"]["properties"] = {
        key: {"default": value} for key, value in defaults["train"].items()
    }
    for stage, values in defaults["resources"].items():
        properties["resources"]["properties"][stage]["properties"] = {
            key: {"default": value} for key, value in values.items()
        }


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    raise ValueError(text)


def _yaml_base_load(text: str) -> Any:
    value = yaml.load(text, Loader=yaml.BaseLoader)  # BaseLoader: strings only
    if isinstance(value, str) or value is None:
        raise ValueError(text)
    return value


def _resolve_ref(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` (``#/$defs/name``); sibling keywords are kept alongside."""
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part]
    merged = dict(_resolve_ref(target, root))
    for key, value in schema.items():
        if key == "$ref":
            continue
        if key == "properties" and "properties" in merged:
            properties = dict(merged["properties"])
            for name, sub in value.items():
                properties[name] = {**properties.get(name, {}), **sub}
            merged["properties"] = properties
        else:
            merged[key] = value
    return merged


def _schema_types(schema: Mapping[str, Any]) -> list[str]:
    types = schema.get("type")
    if types is None and "enum" in schema:
        return []
    return [types] if isinstance(types, str) else list(types or [])


def coerce(config: dict[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with command-line strings converted to the schema's types (a lone value where a
    list is expected becomes a list)."""
    return _coerce(config, schema, schema)


def parse_override_value(text: str) -> Any:
    """The value of a ``KEY=VALUE`` override as ``snakemake --config`` parses it: int, float,
    true/false, YAML without type resolution, else the plain string."""
    for parser in (int, float, _parse_bool, _yaml_base_load):
        try:
            return parser(text)
        except (ValueError, yaml.YAMLError):
            continue
    return text


def _coerce(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> Any:
    """Convert command-line strings to the schema's types; recurse into objects and arrays."""
    schema = _resolve_ref(schema, root)
    types = _schema_types(schema)
    if isinstance(value, str) and types:
        value = _coerce_scalar(value, types)
    if "array" in types and value is not None and not _matches_scalar(value, types):
        value = [value]
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key in list(value):
            sub = properties.get(key)
            if sub is None and isinstance(extra, Mapping):
                sub = extra
            if sub is not None:
                value[key] = _coerce(value[key], sub, root)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        value = [_coerce(item, schema["items"], root) for item in value]
    return value


def _matches_scalar(value: Any, types: list[str]) -> bool:
    """True when ``value`` is a list/mapping or a scalar of one of ``types``."""
    if isinstance(value, (list, dict)):
        return True
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int):
        return "integer" in types or "number" in types
    if isinstance(value, float):
        return "number" in types
    return isinstance(value, str) and "string" in types


def _coerce_scalar(text: str, types: list[str]) -> Any:
    stripped = text.strip()
    if "null" in types and stripped.lower() in ("null", "none", "~"):
        return None
    if "string" in types:
        return text
    if "boolean" in types:
        try:
            return _parse_bool(stripped)
        except ValueError:
            pass
    if "integer" in types and re.fullmatch(r"[+-]?\d+", stripped):
        return int(stripped)
    if "number" in types:
        try:
            number = float(stripped)
        except ValueError:
            return text
        if math.isfinite(number):
            return int(number) if re.fullmatch(r"[+-]?\d+", stripped) else number
    return text


def _extend_with_defaults(validator_class: Any) -> Any:
    """A validator that fills ``default`` values of missing properties while it validates."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):  # type: ignore[no-untyped-def]
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, Mapping) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": properties_with_defaults})


_DefaultFillingValidator = _extend_with_defaults(jsonschema.Draft202012Validator)


def problems(config: dict[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Validate ``config`` in place, filling every missing default; one line per problem."""
    validator = _DefaultFillingValidator(schema)
    return [_describe(error, schema) for error in validator.iter_errors(config)]


def _describe(error: jsonschema.ValidationError, root: Mapping[str, Any]) -> str:
    """One line per schema error: the key path, what is wrong, what is valid."""
    path = _key_path(error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(_resolve_ref(schema, root).get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        where = f"{path}." if path else ""
        names = ", ".join(f"{where}{name}" for name in unknown)
        valid = f"; valid keys: {', '.join(allowed)}" if allowed else ""
        return f"{names}: unknown key{'s' if len(unknown) > 1 else ''}{valid}"
    where = path or "(top level)"
    if error.validator == "enum":
        valid = ", ".join(str(item) for item in error.validator_value)
        return f"{where}: {error.instance!r} is not valid; valid values: {valid}"
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        got = type(error.instance).__name__
        return f"{where}: expected {expected}, got {error.instance!r} ({got})"
    if error.validator == "pattern":
        hint = schema.get("description", "")
        return f"{where}: {error.instance!r} does not match {error.validator_value}. {hint}".strip()
    return f"{where}: {error.message}"


def _key_path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
