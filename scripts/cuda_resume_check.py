"""Whether a CUDA run stopped and resumed from its checkpoint ends with the weights of one that ran
through (the CPU suite checks it bit for bit; cuBLAS and atomics could differ on a GPU).

Trains 8 crops of 128² with ``deq-fourier-1L256D`` twice straight through and once stopped after
step STOP (as SIGTERM would) and resumed, and prints the largest weight difference of the second
straight run and of the resumed run against the first, and each run's per-signal PSNR.
Usage: python scripts/cuda_resume_check.py [STEPS] [STOP] [DEVICE]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from implicit2.bench.inputs import crop_dataset, image_crops
from implicit2.bench.measure import per_signal_psnr
from implicit2.tasks import get_task
from implicit2.training.checkpoint import Checkpointer, TrainingInterrupted
from implicit2.training.loop import train
from implicit2.training.records import TrainResult
from implicit2.training.settings import TrainSettings

MODEL = "deq-fourier-1L256D"


class StopAfter(Checkpointer):
    """A checkpointer that asks to stop once ``stop_step`` steps are done."""

    stop_step = 0

    def due(self, done_steps: int, default_every: int, last: bool = False) -> bool:
        if done_steps == self.stop_step:
            self.stop_requested = True
        return super().due(done_steps, default_every, last)


def largest_difference(a: TrainResult, b: TrainResult) -> float:
    """Largest absolute difference between the two runs' trained weights."""
    first, second = a.chunks[0].state, b.chunks[0].state
    return max((first[k] - second[k]).abs().max().item() for k in first)


def main(steps: int = 300, stop: int = 150, device_name: str = "cuda") -> None:
    task, device = get_task("image_representation"), torch.device(device_name)
    data = crop_dataset(image_crops("camera", 128, 8))
    settings = TrainSettings(steps=steps, log_every=50, checkpoint_every=100, signal_batch=8)
    straight = [train(task, data, MODEL, 0, settings, device) for _ in range(2)]
    with tempfile.TemporaryDirectory() as folder:
        stopping = StopAfter(Path(folder))
        stopping.stop_step = stop
        try:
            train(task, data, MODEL, 0, settings, device, stopping)
            raise SystemExit(f"the run did not stop after step {stop}")
        except TrainingInterrupted:
            pass
        resuming = Checkpointer(Path(folder))
        resumed = train(task, data, MODEL, 0, settings, device, resuming)
    print(f"{steps} steps, stopped after {stop}, resumed from {resuming.resumed}")
    print(f"straight vs straight: max |Δw| = {largest_difference(straight[0], straight[1]):.3e}")
    print(f"straight vs resumed:  max |Δw| = {largest_difference(straight[0], resumed):.3e}")
    for name, result in (("straight", straight[0]), ("again", straight[1]), ("resumed", resumed)):
        psnr = per_signal_psnr(task, data, MODEL, 0, settings, result, device)
        print(f"PSNR {name:8s}", " ".join(f"{p:.3f}" for p in psnr))


if __name__ == "__main__":
    args = sys.argv[1:4]
    main(*(int(a) for a in args[:2]), *args[2:])
