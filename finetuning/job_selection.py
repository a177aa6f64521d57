"""The one rule that picks the best job of a task's search (``choose_best``), and the score it looks at."""
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from finetuning.job_record import EVAL_FILE
from pipeline.manifest import read_json


def non_finite_metric(results: dict) -> str:
    """The first metric of a job's ``eval_results.json`` that is inf or NaN (its eval_loss, a correlation of
    constant predictions), "" when none is: such a job diverged or learnt nothing, and no selection counts it."""
    return next((name for name, value in results.items() if isinstance(value, float) and not math.isfinite(value)),
                "")


def primary_score(job_dir: Path, primary_metric: str) -> Optional[float]:
    results = read_json(Path(job_dir) / EVAL_FILE)
    if not isinstance(results, dict) or not isinstance(results.get(primary_metric), (int, float)):
        return None
    return None if non_finite_metric(results) else float(results[primary_metric])


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


def best_job(task_dir: Path, jobs: list, primary_metric: str, is_done) -> Optional[Any]:
    """The job ``choose_best`` picks among ``jobs`` for which ``is_done(job)`` holds; None when there is none."""
    choice = choose_best(Scored(job.config_key, job.seed, primary_score(Path(task_dir) / job.name, primary_metric), job)
                         for job in jobs if is_done(job))
    return choice.best.item if choice else None
