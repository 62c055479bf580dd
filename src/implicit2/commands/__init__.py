"""One module per CLI command: ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations

import argparse


def device_name(value: str) -> str:
    """argparse type of ``--device``: auto, cpu, cuda or cuda:N (checked before any work)."""
    from implicit2.training.settings import is_device_name

    if not is_device_name(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a device: use auto, cpu, cuda or cuda:N"
        )
    return value
