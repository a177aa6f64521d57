"""TensorBoard event files: the scalars a run already records, written again by rank 0 as TensorBoard reads them
(docs/interfaces.md, "TensorBoard"). A run from scratch removes its folder's old event files first.
"""
from pathlib import Path

EVENT_FILES = "events.out.tfevents.*"  # the names SummaryWriter gives its files
FLUSH_SECONDS = 10  # how stale the files may be while a run is watched (SummaryWriter's default is 120)


def remove_event_files(folder) -> None:
    """Remove the event files directly in ``folder`` (nothing else: the folder may be one a user chose)."""
    for path in Path(folder).glob(EVENT_FILES):
        path.unlink(missing_ok=True)


class ScalarWriter:
    """One event file in ``folder``; ``add`` writes the numbers of a mapping ``tag -> value`` at a step (anything
    else, such as None or a string, is left out)."""

    def __init__(self, folder, from_scratch: bool):
        from torch.utils.tensorboard import SummaryWriter

        if from_scratch:
            remove_event_files(folder)
        self._writer = SummaryWriter(log_dir=str(folder), flush_secs=FLUSH_SECONDS)

    def add(self, scalars: dict, step: int) -> None:
        for tag, value in scalars.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(tag, value, global_step=step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def read_scalars(folder) -> dict:
    """``tag -> [(step, value), ...]`` of every event file in ``folder``, as TensorBoard reads them (steps written
    again by a resumed run replace the earlier file's)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0 = keep every point
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
