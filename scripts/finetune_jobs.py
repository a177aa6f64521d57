"""Read the finetune stage's job folders (``<root>/<TASK>/<JOB>/job.json`` and ``eval_results.json``), of GLUE
tasks and own tasks alike, never console logs. A job that cannot be used (no ``job.json``, a ``completed`` job without
dev metrics) is still listed, with the reason in ``problem``, so the tables show it instead of silently dropping it.
"""
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from finetuning.glue_tasks import FINETUNED_TASKS, GLUE_TASKS
from finetuning.job_record import EVAL_FILE, JOB_FILE
from finetuning.job_selection import non_finite_metric
from finetuning.search_plan import parse_job_name
from finetuning.search_tasks import search_task
from pipeline.defaults import get_default_config
from pipeline.errors import DataError
from pipeline.manifest import read_json
from pipeline.run_ids import file_stamp

# job.json's name -> (the folder name's, type) of each hyperparameter; the finetune stage writes both.
_HYPERPARAMETERS = {"learning_rate": ("lr", float), "batch_size": ("bs", int), "epochs": ("ep", float),
                    "seed": ("seed", int)}
# Metrics are fractions, as scikit-learn computes them; MCC and correlations may be negative.
_METRIC_RANGES = {"accuracy": (0.0, 1.0), "accuracy_mm": (0.0, 1.0), "f1": (0.0, 1.0), "macro_f1": (0.0, 1.0),
                  "precision": (0.0, 1.0), "recall": (0.0, 1.0),
                  "mcc": (-1.0, 1.0), "pearson": (-1.0, 1.0), "spearman": (-1.0, 1.0)}


def result_tasks(cfg=None) -> dict:
    """{name: SearchTask} of every task whose folders result collection reads: all GLUE tasks (leaderboard order),
    then the config's own tasks (FINETUNE.TASKS order, then any other declared one). Without a config, GLUE's alone."""
    cfg = cfg if cfg is not None else get_default_config()
    own = [str(name) for name in cfg.FINETUNE.TASKS if str(name) in cfg.FINETUNE.OWN_TASKS]
    names = dict.fromkeys([*FINETUNED_TASKS, *own, *cfg.FINETUNE.OWN_TASKS])
    return {name: search_task(cfg, name) for name in names}


@dataclass
class JobResult:
    """One finetune job as its folder describes it."""
    task: str
    name: str  # folder name, lr{lr}_bs{batch}_ep{epochs}_seed{seed}
    path: Path
    learning_rate: Optional[float]
    batch_size: Optional[int]
    epochs: Optional[float]
    seed: Optional[int]
    status: str  # running | completed | failed | unknown
    wall_time_s: Optional[float] = None
    init_from: Optional[str] = None
    error: Optional[str] = None
    metrics: dict = field(default_factory=dict)  # eval_results.json (empty when absent)
    problem: str = ""  # why a job that may look finished cannot be used

    @property
    def counted(self) -> bool:
        """Only completed jobs with readable dev metrics take part in the selection."""
        return self.status == "completed" and not self.problem

    @property
    def config(self) -> tuple:
        """The hyperparameter configuration the seeds are grouped by."""
        return (self.learning_rate, self.batch_size, self.epochs)

    def predictions_path(self, submission_name: str) -> Path:
        return self.path / f"predictions_{submission_name}.tsv"


def _number(value, kind):
    try:
        return kind(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _check_metrics(metrics: dict, path: Path) -> None:
    """A metric outside its range means the finetune stage wrote another scale (e.g. percentages): stop loudly."""
    for name, (low, high) in _METRIC_RANGES.items():
        value = metrics.get(name)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue  # a job with an inf or NaN metric is not counted (read_job): it says nothing about scale
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise DataError(f"{path}: metric {name!r} = {value!r} is not a number")
        if not low <= value <= high:
            raise DataError(f"{path}: metric {name!r} = {value} is outside [{low:g}, {high:g}]; eval_results.json"
                            " must hold fractions (0.853), not percentages")


def read_job(task: str, job_dir: Path, primary_metric: str = "") -> JobResult:
    """The job in ``job_dir``, counted when it has ``primary_metric`` (default: the GLUE task's); raises DataError
    only for metrics on the wrong scale."""
    info = read_json(job_dir / JOB_FILE)
    problem = ""
    if not isinstance(info, dict):
        info, problem = {}, "job.json missing or unreadable"
    parsed = parse_job_name(job_dir.name)
    hyperparameters = {name: _number(info.get(name, parsed.get(short)), kind)
                       for name, (short, kind) in _HYPERPARAMETERS.items()}
    job = JobResult(task=task, name=job_dir.name, path=job_dir, status=str(info.get("status", "unknown")),
                    wall_time_s=_number(info.get("wall_time_s"), float), init_from=info.get("init_from"),
                    error=info.get("error"), problem=problem, **hyperparameters)
    metrics_path = job_dir / EVAL_FILE
    metrics = read_json(metrics_path)
    if isinstance(metrics, dict):
        _check_metrics(metrics, metrics_path)
        job.metrics = metrics
    if job.status == "completed" and not job.problem:
        primary = primary_metric or GLUE_TASKS[task].primary_metric
        if not isinstance(metrics, dict):
            job.problem = "eval_results.json missing or unreadable"
        elif not isinstance(metrics.get(primary), (int, float)):
            job.problem = f"eval_results.json has no {primary!r}"
        elif name := non_finite_metric(metrics):
            job.problem = f"eval_results.json has {name} = {metrics[name]}: the training diverged (or learnt nothing)"
        elif None in job.config:
            job.problem = "hyperparameters unknown (job.json lacks them and the folder name does not say)"
    return job


def _task_folders(root: Path, tasks):
    """(task, folder) for every folder under ``root`` named like one of ``tasks``; other folders are ignored."""
    if not root.is_dir():
        return []
    # The finetune stage names task folders by the canonical GLUE name or the own task's name (docs/interfaces.md).
    return [(path.name, path) for path in sorted(root.iterdir()) if path.is_dir() and path.name in tasks]


def _job_folders(task_dir: Path):
    return sorted(p for p in task_dir.iterdir()
                  if p.is_dir() and ((p / JOB_FILE).exists() or (p / EVAL_FILE).exists()))


def load_jobs(root, tasks=None) -> dict:
    """{task: [JobResult, ...]} for every folder under ``root`` of ``tasks`` ({name: SearchTask}, default
    ``result_tasks()``), in the order of ``tasks`` (GLUE's leaderboard order first), jobs by name."""
    root, tasks = Path(root), tasks or result_tasks()
    by_task = {task: [read_job(task, job_dir, tasks[task].primary_metric) for job_dir in _job_folders(folder)]
               for task, folder in _task_folders(root, tasks)}
    return {task: by_task[task] for task in tasks if by_task.get(task)}


def jobs_fingerprint(root, tasks=None) -> str:
    """A hash of every completed job under ``root`` (of ``tasks``, default ``result_tasks()``): its files and its
    predictions' size/time, so that it changes whenever a job completes, reruns or is removed."""
    root = Path(root)
    digest = hashlib.sha256()
    for task, folder in _task_folders(root, tasks or result_tasks()):
        for job_dir in _job_folders(folder):
            info = read_json(job_dir / JOB_FILE)
            if not isinstance(info, dict) or info.get("status") != "completed":
                continue
            digest.update(f"{task}/{job_dir.name}\n".encode())
            for name in (JOB_FILE, EVAL_FILE):
                path = job_dir / name
                digest.update(path.read_bytes() if path.exists() else b"-")
            for path in sorted(job_dir.glob("predictions_*.tsv")):
                digest.update(json.dumps(file_stamp(path)).encode())
    return digest.hexdigest()[:16]
