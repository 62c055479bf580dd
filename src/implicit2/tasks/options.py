"""Checking a task's ``prepare`` options (the config's ``prepare:`` block)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, overload


def check_options(task: str, options: Mapping[str, Any], allowed: Mapping[str, str]) -> dict:
    """Reject unknown option names, listing the valid ones with their meaning."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = "; ".join(f"{name}: {text}" for name, text in allowed.items())
        raise ValueError(f"{task}: unknown prepare option(s) {unknown}. Valid options — {valid}")
    return options


@overload
def positive_int(task: str, options: Mapping[str, Any], name: str, default: int) -> int: ...
@overload
def positive_int(task: str, options: Mapping[str, Any], name: str, default: None) -> int | None: ...
def positive_int(
    task: str, options: Mapping[str, Any], name: str, default: int | None
) -> int | None:
    """``options[name]`` as a positive int (``default`` when absent or null)."""
    value = options.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{task}: prepare option {name} must be a positive integer, got {value!r}")
    return value


def non_negative_float(
    task: str, options: Mapping[str, Any], name: str, default: float | None
) -> float | None:
    """``options[name]`` as a float ≥ 0 (``default`` when absent or null)."""
    value = options.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{task}: prepare option {name} must be a number ≥ 0, got {value!r}")
    return float(value)


def value_scale(task: str, options: Mapping[str, Any]) -> float | None:
    """The ``value_scale`` option (the raw value that means white), > 0, or None (by dtype)."""
    scale = non_negative_float(task, options, "value_scale", None)
    if scale == 0:
        raise ValueError(f"{task}: prepare option value_scale must be > 0")
    return scale


def flag(task: str, options: Mapping[str, Any], name: str) -> bool:
    """``options[name]`` as a bool (False when absent)."""
    value = options.get(name, False)
    if not isinstance(value, bool):
        raise ValueError(f"{task}: prepare option {name} must be true or false, got {value!r}")
    return value
