"""The hyperparameter search: which jobs a task gets, what each job folder is called, and which job is best.

Light on purpose (no torch): the runner reads these in its own process to tell whether the stage is complete.
"""
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pipeline.manifest import read_json

JOB_FILE = "job.json"
EVAL_FILE = "eval_results.json"


@dataclass(frozen=True)
class Job:
    task: str  # canonical task name
    learning_rate: float
    batch_size: int
    epochs: int
    seed: int

    @property
    def name(self) -> str:
        return job_name(self.learning_rate, self.batch_size, self.epochs, self.seed)

    @property
    def config_key(self) -> tuple:
        """The hyperparameters without the seed: seeds of one configuration are summarised together."""
        return self.learning_rate, self.batch_size, self.epochs


def job_name(learning_rate: float, batch_size: int, epochs, seed: int) -> str:
    """``lr{lr}_bs{batch}_ep{epochs}_seed{seed}``, e.g. ``lr5e-05_bs32_ep3_seed42``."""
    return f"lr{learning_rate:g}_bs{batch_size}_ep{epochs:g}_seed{seed}"


def task_grid(cfg, task: str):
    """(learning rates, batch sizes, epochs) of the LARGE grid for the LARGE tasks, of the SMALL grid otherwise."""
    from finetuning.glue_tasks import canonical_task_name

    large = {canonical_task_name(name) for name in cfg.FINETUNE.SEARCH.LARGE.TASKS}
    grid = cfg.FINETUNE.SEARCH.LARGE if task in large else cfg.FINETUNE.SEARCH.SMALL
    return list(grid.LEARNING_RATES), list(grid.BATCH_SIZES), list(grid.EPOCHS)


def plan_task_jobs(cfg, task: str) -> list:
    """Every job of ``task``'s search: learning rates x batch sizes x epochs x seeds."""
    learning_rates, batch_sizes, epochs = task_grid(cfg, task)
    return [Job(task, float(lr), int(bs), int(ep), int(seed))
            for lr in learning_rates for bs in batch_sizes for ep in epochs for seed in cfg.FINETUNE.SEEDS]


def primary_score(job_dir: Path, primary_metric: str) -> Optional[float]:
    results = read_json(Path(job_dir) / EVAL_FILE)
    if not isinstance(results, dict) or not isinstance(results.get(primary_metric), (int, float)):
        return None
    return float(results[primary_metric])


def best_job(task_dir: Path, jobs: list, primary_metric: str, is_done) -> Optional[Job]:
    """The best of ``jobs``: the configuration with the highest median (over seeds) of the primary metric, then its
    best seed. Only jobs for which ``is_done(job)`` holds count; None when there is none.

    The median keeps one lucky seed from deciding the configuration; the best seed is then the model to reuse.
    """
    scores: dict = {}
    for job in jobs:
        if not is_done(job):
            continue
        score = primary_score(Path(task_dir) / job.name, primary_metric)
        if score is not None:
            scores.setdefault(job.config_key, []).append((score, job))
    if not scores:
        return None
    best_config = max(scores, key=lambda key: statistics.median(score for score, _ in scores[key]))
    return max(scores[best_config], key=lambda pair: pair[0])[1]
