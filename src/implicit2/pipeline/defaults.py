"""The built-in defaults of every setting, read from ``defaults.yaml`` beside this module.

That file is the one place their values are written: the config schema takes its ``default``s from
it (:func:`implicit2.pipeline.schema.load_schema`), validation fills each task's paper settings
from its ``tasks`` block (:mod:`implicit2.pipeline.config`), and
:class:`implicit2.training.settings.TrainSettings` takes its field defaults from its ``train``
block. Torch-free: the Snakefile imports it.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

DEFAULTS_PATH = Path(__file__).with_name("defaults.yaml")


@functools.cache
def _load() -> dict[str, Any]:
    return yaml.safe_load(DEFAULTS_PATH.read_text(encoding="utf-8"))


def load_defaults() -> dict[str, Any]:
    """A fresh copy of the defaults: ``device``, ``train``, ``resources`` and ``tasks``."""
    return copy.deepcopy(_load())


def train_defaults() -> dict[str, Any]:
    """Every training setting (``--hparams`` key) with its default, ``device`` last."""
    defaults = load_defaults()
    return {**defaults["train"], "device": defaults["device"]}
