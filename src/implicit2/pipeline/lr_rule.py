"""The learning rate of a fit shorter than the task's own run (``implicit2 fit --steps N``), where
the run does not set one.

Why: Adam moves each weight by about ``lr`` per step whatever the size of its gradient, so a run
of ``steps`` steps can move a weight by about ``lr × steps``. The paper's learning rates were
tuned for the paper's runs (1e-3 over 5000 steps for an image, 3000 for a sound); a run of a few
hundred steps at the same rate ends before its weights have travelled that far, with its filters
still at their drawn values (at high input scales their frequencies then show as noise above the
picture's own content). The rule keeps the paper's travel: ``paper_lr × paper_steps / steps``,
up to the task's ceiling (:data:`MAX_LR`, the highest rate measured to train stably and no worse
than a lower one) and never below the paper's rate, so a run of the task's own length keeps the
paper's setting. Tasks without a measured ceiling keep their rate. docs/fit_defaults.md has the
measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Per task, the highest learning rate the rule gives: images train with the DEQ spectrally
#: normalised and stay stable above it; audio, without normalisation, diverged at 1e-2 (48 kHz).
MAX_LR: dict[str, float] = {"image_representation": 2e-2, "audio": 3e-3}


@dataclass(frozen=True)
class DerivedLr:
    """The rule's learning rate, where it came from (``steps`` or ``task default``) and why."""

    lr: float
    source: str
    reason: str


def derive_lr(task: str, paper_lr: float, paper_steps: int, steps: int) -> DerivedLr:
    """The learning rate for a run of ``steps`` steps of ``task``, whose own setting is
    ``paper_lr`` over ``paper_steps`` steps (module docstring).

    Raises:
        ValueError: a rate or a step count is not positive.
    """
    if not paper_lr > 0:
        raise ValueError(f"{task}: the task's lr must be positive, got {paper_lr}")
    if paper_steps < 1 or steps < 1:
        raise ValueError(f"{task}: steps must be positive, got {steps} (task: {paper_steps})")
    ceiling = MAX_LR.get(task)
    if ceiling is None or steps >= paper_steps:
        return DerivedLr(paper_lr, "task default", "task default")
    travel = paper_lr * paper_steps
    lr = max(paper_lr, min(ceiling, travel / steps))
    why = f"the task's {paper_lr:g} × {paper_steps} steps / {steps} steps"
    if lr == ceiling:
        why += f", capped at the task's {ceiling:g}"
    return DerivedLr(lr, "steps", why)
