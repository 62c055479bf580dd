"""The paper's tasks: name → :class:`~implicit2.tasks.base.Task` (``base.py``: the interface).

``get_task(name)`` returns a task instance (``implicit2.data.infer.infer_task`` guesses a file's
task; ``implicit2.names.TASKS`` holds the facts every task shares with the workflow).
"""

from __future__ import annotations

from implicit2.tasks.audio import Audio
from implicit2.tasks.base import PreparedData, Task
from implicit2.tasks.image import ImageGeneralization, ImageRepresentation
from implicit2.tasks.occupancy import Occupancy
from implicit2.tasks.video import Video

#: Task name → Task class.
TASKS: dict[str, type[Task]] = {
    task.name: task for task in (ImageRepresentation, ImageGeneralization, Audio, Video, Occupancy)
}


def get_task(name: str) -> Task:
    """A new instance of the task called ``name``.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[name]()


__all__ = ["TASKS", "PreparedData", "Task", "get_task"]
