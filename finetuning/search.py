"""The hyperparameter search: which jobs a task gets, what each job folder is called, and the one rule that picks
the best job.

Light on purpose (no torch): the runner reads these in its own process to tell whether the stage is complete.
"""
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from finetuning.job_record import EVAL_FILE
from pipeline.manifest import read_json


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


@dataclass(frozen=True)
class Scored:
    """One finished run of a configuration: what the selection rule looks at, and the caller's own record of it."""
    config: tuple  # (learning rate, batch size, epochs)
    seed: int
    score: float  # the task's primary dev metric
    item: Any = None  # returned as is (a Job, a JobResult)


@dataclass(frozen=True)
class Choice:
    config: tuple
    members: list  # the configuration's Scored runs, by seed
    best: Scored  # the seed whose test predictions are submitted and whose model STILT starts from
    configs: int  # configurations with at least one scored run


def _rank(members: list) -> tuple:
    values = [member.score for member in members]
    return statistics.median(values), statistics.fmean(values), len(values)


def choose_best(scored) -> Optional[Choice]:
    """THE selection rule (STILT's source model, the report, collect_best_val.py and the submission zip all use it):

    1. the configuration with the highest **median over seeds** of the primary metric: one lucky seed on a small
       task (RTE, MRPC, CoLA) must not beat a configuration that is better on most seeds;
    2. a tie on the median goes to the higher mean, then to more seeds (a configuration with a failed seed has less
       evidence), then to the first configuration in sorted (learning rate, batch size, epochs) order, so the choice
       never depends on the order runs were found;
    3. within it, the seed with the best score (a tie goes to the lowest seed).

    Runs without a finite score take no part. None when no run is left."""
    groups: dict = {}
    for run in scored:
        if isinstance(run.score, (int, float)) and math.isfinite(run.score):
            groups.setdefault(run.config, []).append(run)
    if not groups:
        return None
    ranks = {config: _rank(members) for config, members in groups.items()}
    top = max(ranks.values())
    config = min(config for config, rank in ranks.items() if rank == top)
    members = sorted(groups[config], key=lambda run: run.seed)
    best = max(members, key=lambda run: run.score)  # max keeps the first of equals: the lowest seed
    return Choice(config, members, best, len(groups))


def best_job(task_dir: Path, jobs: list, primary_metric: str, is_done) -> Optional[Job]:
    """The job ``choose_best`` picks among ``jobs`` for which ``is_done(job)`` holds; None when there is none."""
    scored = []
    for job in jobs:
        score = primary_score(Path(task_dir) / job.name, primary_metric) if is_done(job) else None
        if score is not None:
            scored.append(Scored(job.config_key, job.seed, score, job))
    choice = choose_best(scored)
    return choice.best.item if choice else None
