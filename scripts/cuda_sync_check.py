"""Count host synchronisations in an amortized CUDA training run (issue 7: none per step).

Runs a short batched training twice (the first warms up) with ``torch.cuda.set_sync_debug_mode``
set to warn, and prints how many synchronising calls the second run made and from where.
Usage: python scripts/cuda_sync_check.py [STEPS] [LOG_EVERY]
"""

from __future__ import annotations

import collections
import sys
import warnings

import torch

from implicit2.bench.inputs import crop_dataset, image_crops
from implicit2.tasks import get_task
from implicit2.training.loop import train
from implicit2.training.settings import TrainSettings


def main(steps: int = 200, log_every: int = 100) -> None:
    data = crop_dataset(image_crops("camera", 128, 8))
    settings = TrainSettings(
        steps=steps, log_every=log_every, checkpoint_every=steps, device="cuda"
    )
    task, device = get_task("image_representation"), torch.device("cuda")
    train(task, data, "deq-fourier-1L256D", 0, settings, device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        train(task, data, "deq-fourier-1L256D", 0, settings, device)
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    sites = collections.Counter(f"{w.filename}:{w.lineno}" for w in syncs)
    print(f"{steps} steps, log every {log_every}: {len(syncs)} synchronising calls")
    for site, count in sites.most_common():
        print(f"  {count:5d}  {site}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
