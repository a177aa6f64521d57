"""What the console shows while the search runs: a line when each job starts and ends, and a periodic line inside a
long job, all led by ``[k/N] TASK lr=… bs=… ep=… seed=…``. The child job (``run_glue.py --progress_file``) rewrites
a small JSON file with its step count every few seconds, which the stage reads between waits.

The ETA predicts each job left as a fixed time (what a finished job spent outside its training steps: start-up,
loading, the final evaluation) plus its training rows x epochs at the finished jobs' seconds per row and epoch, both
from the task's own finished jobs once it has one (tasks differ in row length and dev size), else from all. Were
the start-up counted per row, the first estimates of a search whose first jobs are small would run high.
"""
import threading
import time
from pathlib import Path
from typing import Optional

from pipeline.log_setup import format_duration
from pipeline.manifest import read_json, write_json_atomic

PROGRESS_FILE = "progress.json"
WRITE_EVERY_S = 2.0  # the child's writes: often enough for any console interval, rare enough to cost nothing


class ProgressFile:
    """The child's side: ``update(step)`` after every optimizer step rewrites the file at most every
    ``WRITE_EVERY_S`` seconds (and at the last step) with the step, the total, the speed since this process
    began training (a resumed job counts only its own steps), and when and at which step it began."""

    def __init__(self, path, total_steps: int, first_step: int = 0):
        self.path, self.total_steps, self.first_step = Path(path), total_steps, first_step
        self.started = self.written = time.time()

    def update(self, step: int) -> None:
        now = time.time()
        if now - self.written < WRITE_EVERY_S and step < self.total_steps:
            return
        elapsed = max(now - self.started, 1e-9)
        write_json_atomic(self.path, {"step": step, "total_steps": self.total_steps,
                                      "steps_per_s": round((step - self.first_step) / elapsed, 4),
                                      "updated_at": now, "started_at": self.started, "first_step": self.first_step})
        self.written = now


def training_time(progress) -> Optional[tuple]:
    """(seconds the job's process spent in training steps, the share of the job's steps it ran) from a finished
    job's last progress record, or None when it holds no finished training (no file, a job without --do_train)."""
    if not isinstance(progress, dict) or "started_at" not in progress or not progress.get("total_steps"):
        return None
    if progress["step"] < progress["total_steps"]:
        return None
    share = (progress["step"] - progress.get("first_step", 0)) / progress["total_steps"]
    return max(0.0, progress["updated_at"] - progress["started_at"]), share


class JobWatcher:
    """The stage's side for one running job: ``poll(now)`` prints a line with the step, steps/s and the job's
    training ETA when ``every_s`` seconds have passed since the last line and the child has reported a step."""

    def __init__(self, progress_path, prefix: str, every_s: float, started: float, log=print):
        self.path, self.prefix, self.every_s, self.log = Path(progress_path), prefix, every_s, log
        self.last_line = started

    def poll(self, now: float) -> Optional[str]:
        if not self.every_s or now - self.last_line < self.every_s:
            return None
        progress = read_json(self.path)
        if not isinstance(progress, dict) or not progress.get("total_steps"):
            return None
        step, total, speed = progress["step"], progress["total_steps"], progress.get("steps_per_s") or 0
        eta = f", training ETA {format_duration((total - step) / speed)}" if speed and step < total else ""
        line = f"{self.prefix} step {step}/{total} ({100 * step / total:.0f}%), {speed:.2f} steps/s{eta}"
        self.log(line, flush=True)
        self.last_line = now
        return line


class SearchProgress:
    """Numbers the jobs of this run (``[k/N]``) and estimates the time the rest of the search needs, over ``workers``
    side by side. ``work``: each ``(job, random_init)`` key's size (training rows x epochs)."""

    def __init__(self, work: dict, workers: int = 1):
        self.work, self.workers = dict(work), max(1, workers)
        self.numbers: dict = {}
        # key -> (seconds, training seconds, share of its work trained), or None: skipped, took no time of this run
        self.finished: dict = {}
        self.lock = threading.Lock()

    @property
    def total(self) -> int:
        return len(self.work)

    def add(self, work: dict) -> None:
        """Jobs that became known later (the STILT targets once their source model is chosen)."""
        with self.lock:
            for key, units in work.items():
                self.work.setdefault(key, units)

    def prefix(self, key) -> str:
        job, random_init = key
        with self.lock:
            number = self.numbers.setdefault(key, len(self.numbers) + 1)
        label = f"{job.task} lr={job.learning_rate:g} bs={job.batch_size} ep={job.epochs:g} seed={job.seed}"
        return f"[{number}/{self.total}] {label}{' (random init)' if random_init else ''}"

    def finish(self, key, seconds: Optional[float], training: Optional[tuple] = None) -> None:
        """``seconds``: the job's whole time (None: skipped); ``training``: ``training_time``'s (seconds, share),
        without which the whole time counts as training."""
        with self.lock:
            if seconds is None:
                self.finished[key] = None
            else:
                training_s, share = training if training is not None else (seconds, 1.0)
                self.finished[key] = (seconds, min(training_s, seconds), share)

    def _job_time(self, task: str) -> Optional[tuple]:
        """(fixed seconds per job: the mean time outside training, seconds per unit of work trained) of the task's
        finished jobs, else of all finished jobs; None before any."""
        timed = {key: times for key, times in self.finished.items() if times is not None}
        for keys in ([key for key in timed if key[0].task == task], list(timed)):
            units = sum(self.work[key] * timed[key][2] for key in keys)
            if units:
                fixed = sum(timed[key][0] - timed[key][1] for key in keys) / len(keys)
                return fixed, sum(timed[key][1] for key in keys) / units
        return None

    def eta(self) -> Optional[float]:
        """Seconds the jobs not finished yet should take, or None before any job finished."""
        with self.lock:
            left = [key for key in self.work if key not in self.finished]
            times = {key[0].task: self._job_time(key[0].task) for key in left}
            if any(known is None for known in times.values()):
                return None
            return sum(times[key[0].task][0] + self.work[key] * times[key[0].task][1] for key in left) / self.workers

    def summary(self) -> str:
        """``search: 5/12 jobs finished, ETA 2h05m`` (or ``ETA after the first job``)."""
        eta = self.eta()
        with self.lock:
            done = len(self.finished)
        if done >= self.total:
            return f"search: {done}/{self.total} jobs finished"
        when = "ETA after the first job" if eta is None else f"ETA {format_duration(eta)}"
        return f"search: {done}/{self.total} jobs finished, {when}"
