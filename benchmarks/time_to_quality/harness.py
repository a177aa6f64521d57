"""What every contender's training process shares: a training clock that stops while a snapshot is written, and
the points of the budget at which the model is exported for the common evaluation.

The clock starts at the first training step (building the model and reading the data are not counted, for anyone)
and counts everything after it that a user would wait for: steps, data loading, logging. Only the snapshot exports,
which exist for the benchmark alone, are taken out."""
import time
from pathlib import Path

from pipeline.manifest import read_json, write_json_atomic

SNAPSHOTS_NAME = "snapshots.json"


class TrainingClock:
    """Seconds of training so far: ``elapsed()`` like ``pretraining.budget.RunClock``, with ``paused()``."""

    def __init__(self):
        self._start = None
        self._paused_s = 0.0

    def start(self) -> None:
        if self._start is None:
            self._start = time.monotonic()

    def elapsed(self) -> float:
        if self._start is None:
            return 0.0
        return time.monotonic() - self._start - self._paused_s

    def paused(self):
        clock = self

        class _Pause:
            def __enter__(self):
                self.began = time.monotonic()

            def __exit__(self, *exc):
                clock._paused_s += time.monotonic() - self.began

        return _Pause()


class Snapshots:
    """Exports the model at ``points`` evenly spaced fractions of ``budget_s`` (the last one is the end of the
    budget) and records, in ``output_dir/snapshots.json``, each folder with its training seconds, steps, samples and
    real (non-[PAD]) tokens.

    ``export(folder)`` is the contender's own way of writing a Hugging Face model folder."""

    def __init__(self, output_dir: Path, budget_s: float, points: int, export):
        self.output_dir = Path(output_dir)
        self.budget_s = budget_s
        self.due = [budget_s * (k + 1) / points for k in range(points)]
        self.export = export
        self.taken = []

    def finished(self, clock: TrainingClock) -> bool:
        return clock.elapsed() >= self.budget_s

    def maybe_take(self, clock: TrainingClock, step: int, samples: int, real_tokens: int) -> None:
        """Export every snapshot now due (the clock stopped meanwhile). ``real_tokens``: the non-[PAD] positions
        trained on so far, the work a row of padding only pretends to do."""
        while self.due and clock.elapsed() >= self.due[0]:
            seconds = clock.elapsed()
            self.due.pop(0)
            folder = self.output_dir / f"snapshot-{len(self.taken) + 1}"
            with clock.paused():
                self.export(folder)
                self.taken.append({"folder": folder.name, "train_s": round(seconds, 2), "step": step,
                                   "samples": samples, "real_tokens": real_tokens})
                write_json_atomic(self.output_dir / SNAPSHOTS_NAME, self.taken)


def read_snapshots(output_dir: Path) -> list:
    return read_json(Path(output_dir) / SNAPSHOTS_NAME) or []
