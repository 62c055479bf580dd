"""Training settings (the ``--hparams`` of ``implicit2 train``): typed, validated, with defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from implicit2.pipeline.defaults import train_defaults

_DEFAULTS = train_defaults()


@dataclass(frozen=True)
class TrainSettings:
    """Resolved settings of one training run (see docs/architecture.md for every key); a key not
    given takes its default from :mod:`implicit2.pipeline.defaults`."""

    steps: int = _DEFAULTS["steps"]
    lr: float = _DEFAULTS["lr"]
    lr_decay: float = _DEFAULTS["lr_decay"]
    input_scale: float = _DEFAULTS["input_scale"]
    spectral_norm: bool = _DEFAULTS["spectral_norm"]
    solver: str = _DEFAULTS["solver"]
    tol: float = _DEFAULTS["tol"]
    eval_tol: float = _DEFAULTS["eval_tol"]
    max_iter: int = _DEFAULTS["max_iter"]
    gradient: str = _DEFAULTS["gradient"]
    unroll_steps: int = _DEFAULTS["unroll_steps"]
    amortize: bool = _DEFAULTS["amortize"]
    batch_size: int | None = _DEFAULTS["batch_size"]
    grad_clip: float | None = _DEFAULTS["grad_clip"]
    gabor_alpha: float = _DEFAULTS["gabor_alpha"]
    log_every: int = _DEFAULTS["log_every"]
    checkpoint_every: int = _DEFAULTS["checkpoint_every"]
    signal_batch: int = _DEFAULTS["signal_batch"]
    warm_cache_mb: int | None = _DEFAULTS["warm_cache_mb"]
    tf32: bool = _DEFAULTS["tf32"]
    compile: bool = _DEFAULTS["compile"]
    device: str = _DEFAULTS["device"]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainSettings:
        """Build from a mapping; unknown keys and wrong types raise ValueError naming the key."""
        fields = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; valid keys: {sorted(fields)}")
        checked = {name: _check(name, fields[name].type, value) for name, value in values.items()}
        settings = cls(**checked)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Range checks that the type alone does not catch."""
        positive = {"steps": self.steps, "lr": self.lr, "tol": self.tol, "eval_tol": self.eval_tol}
        positive |= {"max_iter": self.max_iter, "log_every": self.log_every}
        positive |= {"checkpoint_every": self.checkpoint_every, "input_scale": self.input_scale}
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"training setting {name} must be positive, got {value}")
        if self.batch_size is not None and self.batch_size <= 0:
            raise ValueError(
                f"training setting batch_size must be positive or null, got {self.batch_size}"
            )
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(
                f"training setting grad_clip must be positive or null, got {self.grad_clip}"
            )
        if self.lr_decay < 0:
            raise ValueError(f"training setting lr_decay must be ≥ 0, got {self.lr_decay}")
        if self.signal_batch < 0:
            raise ValueError(f"training setting signal_batch must be ≥ 0, got {self.signal_batch}")
        if self.warm_cache_mb is not None and self.warm_cache_mb < 0:
            raise ValueError(
                f"training setting warm_cache_mb must be ≥ 0 or null, got {self.warm_cache_mb}"
            )
        if not is_device_name(self.device):
            raise ValueError(
                f"training setting device must be auto, cpu or cuda[:N], got {self.device!r}"
            )

    def model_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``build_model`` that these settings fix."""
        return {
            "input_scale": self.input_scale,
            "spectral_norm": self.spectral_norm,
            "gabor_alpha": self.gabor_alpha,
            "solver": self.solver,
            "tol": self.tol,
            "eval_tol": self.eval_tol,
            "max_iter": self.max_iter,
            "gradient": self.gradient,
            "unroll_steps": self.unroll_steps,
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def apply_device_options(settings: TrainSettings, device: torch.device) -> dict[str, Any]:
    """Set the process-wide matmul precision for ``device``; return the options in effect.

    TF32 tensor-core matmuls (and convolutions) are on by default on CUDA (``tf32: false`` opts
    out); they do not exist on CPU, which always computes in full float32.
    """
    return {"tf32": set_matmul_precision(settings.tf32, device), "compile": settings.compile}


def set_matmul_precision(tf32: bool, device: torch.device) -> bool:
    """TF32 matmuls on ``device`` when ``tf32`` and it is CUDA; returns whether TF32 is on."""
    tf32 = tf32 and device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
    return tf32


def is_device_name(name: str) -> bool:
    """Whether ``name`` is a device this project accepts: auto, cpu, cuda or cuda:N."""
    index = name.removeprefix("cuda:")
    return name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and index.isdigit())


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use device: auto")
    return torch.device(name)


_TYPES = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "int | None": (int, type(None)),
    "float | None": (int, float, type(None)),
}


def _check(name: str, annotation: Any, value: Any) -> Any:
    expected = _TYPES[str(annotation)]
    if isinstance(value, bool) and bool not in expected:
        raise ValueError(f"training setting {name} must be {annotation}, got {value!r}")
    if not isinstance(value, expected):
        raise ValueError(f"training setting {name} must be {annotation}, got {value!r}")
    if float in expected and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
