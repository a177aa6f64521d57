"""Each task's best hyperparameter configuration (``finetuning.job_selection.choose_best``, which also picks the job
STILT starts from), the statistics the report shows for it, and the GLUE score as the BERT paper reports it: the
plain average of nine dev numbers (WNLI left out), each the median over seeds of the task's best configuration. A
partial average (tasks missing) says so, with both lists: it is never passed off as the score.
"""
import statistics
from dataclasses import asdict, dataclass
from typing import Optional

from finetuning.glue_tasks import GLUE_SCORE_METRICS
from finetuning.job_selection import Scored, choose_best
from finetuning.search_tasks import SearchTask
from scripts.finetune_jobs import JobResult, result_tasks


@dataclass
class ConfigResult:
    """The counted jobs (one per seed) of one (learning rate, batch size, epochs) configuration."""
    learning_rate: float
    batch_size: int
    epochs: float
    jobs: list  # JobResult, sorted by seed

    def values(self, metric: str) -> list:
        return [job.metrics[metric] for job in self.jobs if isinstance(job.metrics.get(metric), (int, float))]

    def median(self, metric: str) -> Optional[float]:
        values = self.values(metric)
        return statistics.median(values) if values else None

    def describe(self) -> str:
        return f"lr {self.learning_rate:g}, batch {self.batch_size}, epochs {self.epochs:g}"


@dataclass
class TaskBest:
    """The chosen configuration of one task and the statistics the report shows for it."""
    task: str
    metric: str  # the primary metric the selection maximised
    search_task: SearchTask  # its type and the metrics its jobs report
    config: ConfigResult
    best_job: JobResult  # the configuration's best seed: its test predictions are submitted
    configs_tried: int  # configurations with at least one counted job
    max_seeds: int  # most counted seeds any configuration of the task has

    @property
    def median(self) -> float:
        return self.config.median(self.metric)

    @property
    def spread(self) -> dict:
        """min, max and standard deviation of the primary metric over the chosen configuration's seeds."""
        values = self.config.values(self.metric)
        return {"min": min(values), "max": max(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0, "seeds": len(values)}

    def median_metrics(self) -> dict:
        """Median over seeds of every dev metric of the task (what the GLUE score averages)."""
        return {name: self.config.median(name) for name in self.search_task.metrics}


def group_by_config(jobs) -> list:
    """The counted jobs grouped into configurations, sorted by (learning rate, batch size, epochs)."""
    groups: dict = {}
    for job in jobs:
        if job.counted:
            groups.setdefault(job.config, []).append(job)
    return [ConfigResult(lr, bs, ep, sorted(members, key=lambda job: job.seed))
            for (lr, bs, ep), members in sorted(groups.items())]


def select_best(task: SearchTask, jobs) -> Optional[TaskBest]:
    """The task's best configuration and seed on its primary metric by ``finetuning.job_selection.choose_best`` (the
    rule STILT uses too), GLUE task or one's own alike; None when no job of the task completed."""
    metric = task.primary_metric
    configs = group_by_config(jobs)
    choice = choose_best(Scored(job.config, job.seed, job.metrics[metric], job) for config in configs
                         for job in config.jobs)
    if choice is None:
        return None
    best = next(config for config in configs if (config.learning_rate, config.batch_size, config.epochs)
                == choice.config)
    return TaskBest(task=task.name, metric=metric, search_task=task, config=best, best_job=choice.best.item,
                    configs_tried=len(configs), max_seeds=max(len(c.jobs) for c in configs))


def select_all(jobs_by_task: dict, tasks=None) -> dict:
    """{task: TaskBest} for every task with at least one counted job; ``tasks`` ({name: SearchTask}) as in
    ``load_jobs``."""
    tasks = tasks or result_tasks()
    bests = {task: select_best(tasks[task], jobs) for task, jobs in jobs_by_task.items()}
    return {task: best for task, best in bests.items() if best is not None}


@dataclass
class GlueScore:
    columns: list  # [{"label", "task", "metric", "value" (fraction or None)}] in GLUE_SCORE_METRICS order
    covered: list  # labels of the columns with a value
    missing: list  # labels of the columns without one
    missing_tasks: list  # the tasks behind the missing columns
    score: Optional[float]  # the average (a fraction) over the covered columns; None when nothing is covered

    @property
    def complete(self) -> bool:
        return not self.missing

    def describe(self, name: str = "GLUE score") -> str:
        """One line for the console and the report, naming what the average covers when it is partial."""
        if self.score is None:
            return f"{name} (dev): not available, no task of the score has results (missing: {', '.join(self.missing)})"
        text = f"{name} (dev): {100 * self.score:.2f}"
        if self.complete:
            return text + f" (average of all {len(self.columns)})"
        return (text + f" PARTIAL: average over {len(self.covered)} of {len(self.columns)} columns"
                f" (covered: {', '.join(self.covered)}; missing: {', '.join(self.missing)})")

    def as_dict(self) -> dict:
        return {**asdict(self), "complete": self.complete}


def glue_score(bests: dict) -> GlueScore:
    """The score over ``bests`` ({task: TaskBest}); a column is missing when its task has no best configuration."""
    columns = [{"label": label, "task": task, "metric": metric,
                "value": bests[task].config.median(metric) if task in bests else None}
               for task, metric, label in GLUE_SCORE_METRICS]
    present = [c for c in columns if c["value"] is not None]
    missing = [c for c in columns if c["value"] is None]
    return GlueScore(columns, covered=[c["label"] for c in present], missing=[c["label"] for c in missing],
                     missing_tasks=list(dict.fromkeys(c["task"] for c in missing)),
                     score=sum(c["value"] for c in present) / len(present) if present else None)
