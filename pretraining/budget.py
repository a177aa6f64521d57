"""The wall-clock budget of a pretraining run: the clock that survives resumes, and the forecast that stops the
loop early enough for the end-of-run work (checkpoint, validation, export, curves) to fit in the budget."""
import math
import time

REHEARSAL_POINTS = (0.5, 0.85)  # fractions of the time budget at which the end-of-run work is timed


class RunClock:
    """Training wall-clock time, continuing the elapsed time of earlier runs after a resume."""

    def __init__(self, offset_s: float = 0.0):
        self._start = time.monotonic()
        self.offset_s = offset_s

    def elapsed(self) -> float:
        return self.offset_s + time.monotonic() - self._start


class CostTracker:
    """Durations of the recurring non-training work (validation, checkpoint, export, plot). The estimate is the
    fastest of the last three: on a shared machine, interference only ever makes a measurement slower."""

    def __init__(self):
        self._seen = {}

    def record(self, kind: str, seconds: float) -> None:
        self._seen[kind] = (self._seen.get(kind, []) + [seconds])[-3:]

    def get(self, kind: str, default=None):
        return min(self._seen[kind]) if kind in self._seen else default


class TimeBudget:
    """Decides, before each optimizer step, whether the step and the end of the run still fit in the budget.

    ``validation_samples`` is what one validation reads (for the estimate before one was timed); the step time is
    the slowest of the last 10 steps (the first step of a process is left out: one-off warm-up work makes it many
    times slower)."""

    def __init__(self, budget_s: float, batch_size: int, validation_samples: int, validation_every: int,
                 checkpoint_every: int):
        self.budget_s = budget_s
        self.batch_size = batch_size
        self.validation_samples = validation_samples
        self.validation_every = validation_every
        self.checkpoint_every = checkpoint_every
        self.costs = CostTracker()
        self.step_seconds = None
        self._recent = []
        self._timed_steps = 0
        self.rehearsals = 0

    def record_step(self, seconds: float) -> None:
        if self._timed_steps:
            self._recent = (self._recent + [seconds])[-10:]
            self.step_seconds = max(self._recent)
        self._timed_steps += 1

    def finish_reserve(self) -> float:
        """Seconds the end of the run needs: measured once rehearsed, estimated from the step time before that."""
        step_s = self.step_seconds or 0.0
        # forward only: about a third of a training step's time per sample
        validation = self.costs.get("validation", self.validation_samples / self.batch_size * step_s / 3)
        export = self.costs.get("export", 1.0)
        checkpoint = self.costs.get("checkpoint", 3 * export)
        return 1.2 * (checkpoint + validation + export + self.costs.get("plot", 0.5))

    def next_step_cost(self, next_step: int) -> float:
        cost = self.step_seconds or 0.0
        if self.validation_every and next_step % self.validation_every == 0:
            cost += self.costs.get("validation", 0.0)
        if next_step % self.checkpoint_every == 0:
            cost += self.costs.get("checkpoint", 0.0)
        return cost

    def out_of_time(self, elapsed: float, next_step: int) -> bool:
        if self.step_seconds is None:  # no step timed yet: nothing to forecast from
            return elapsed >= self.budget_s
        return elapsed + self.next_step_cost(next_step) + self.finish_reserve() >= self.budget_s

    def eta(self, elapsed: float, step: int, num_steps: int, step_seconds: float) -> tuple:
        """(seconds until the run ends, what ends it: "steps" or "time budget"), whichever comes first. By steps:
        the steps left at ``step_seconds`` each, the validations and checkpoints due on the way, and the end-of-run
        work; by the budget: the time left in it (the loop stops early enough for the end-of-run work to fit)."""
        def due(every: int) -> int:  # multiples of ``every`` in (step, num_steps]
            return num_steps // every - step // every if every else 0

        by_steps = (max(0, num_steps - step) * step_seconds + due(self.validation_every) * self.costs.get(
            "validation", 0.0) + due(self.checkpoint_every) * self.costs.get("checkpoint", 0.0) + self.finish_reserve())
        by_budget = max(0.0, self.budget_s - elapsed)
        return (by_steps, "steps") if by_steps <= by_budget else (by_budget, "time budget")

    def rehearsal_due(self, elapsed: float) -> bool:
        """True once per ``REHEARSAL_POINTS`` entry, when the end-of-run work should be done and timed."""
        if self.rehearsals < len(REHEARSAL_POINTS) and elapsed > REHEARSAL_POINTS[self.rehearsals] * self.budget_s:
            self.rehearsals += 1
            return True
        return False


def budget_seconds(cfg) -> float:
    """The run's budget: TOTAL_TRAINING_HOURS, or EARLY_EXIT_HOURS when that is sooner (it stops the run without
    moving the time schedule's horizon)."""
    p = cfg.PRETRAIN
    return 3600.0 * min(p.TOTAL_TRAINING_HOURS, p.EARLY_EXIT_HOURS or math.inf)
