"""TensorBoard event files: the scalars a run already records (pretraining's ``metrics.jsonl`` lines, a finetuning
job's log history) written again as TensorBoard reads them, by rank 0 only. The pipeline puts them under
``<run>/tensorboard/`` (``pipeline.layout.tensorboard_dir_of``), so that ``tensorboard --logdir <run>/tensorboard``
shows the pretraining and every finetuning job side by side.

A resumed run appends a new event file to the same folder. TensorBoard orders points by step and, when a later file
writes a step again, drops the earlier file's points from that step on (its "orphaned data" rule): the steps a killed
run logged after its last checkpoint do not show twice. A run that starts from scratch removes the folder's old event
files first, as it starts ``metrics.jsonl`` afresh.
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

        self.folder = Path(folder)
        if from_scratch:
            remove_event_files(self.folder)
        self._writer = SummaryWriter(log_dir=str(self.folder), flush_secs=FLUSH_SECONDS)

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
