"""The search's plan: which jobs each task gets (learning rates x batch sizes x epochs x seeds), what each job
folder is called, the STILT targets, and ``SearchTree``: the planned jobs of one tree and whether each has completed.

Light on purpose (no torch): the runner reads these in its own process to tell whether the stage is complete.
"""
import re
from dataclasses import dataclass
from pathlib import Path

from finetuning.job_record import MODEL_SUBDIR, data_stamps, expected_record, is_completed, job_settings, model_stamps
from finetuning.job_selection import best_job
from finetuning.search_tasks import RESULT_FIELDS, data_files, search_task, task_grid, task_name
from pipeline import layout


@dataclass(frozen=True)
class PlannedJob:
    """One job of the grid: its task and hyperparameters (its folder is ``name``)."""

    task: str  # the task's name (canonical for GLUE)
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
    """``lr{lr}_bs{batch}_ep{epochs}_seed{seed}``, e.g. ``lr5e-05_bs32_ep3_seed42`` (read by ``parse_job_name``)."""
    return f"lr{learning_rate:g}_bs{batch_size}_ep{epochs:g}_seed{seed}"


_JOB_NAME = re.compile(r"^lr(?P<lr>[^_]+)_bs(?P<bs>\d+)_ep(?P<ep>[^_]+)_seed(?P<seed>-?\d+)$")


def parse_job_name(folder_name: str) -> dict:
    """The ``lr``, ``bs``, ``ep`` and ``seed`` texts of a ``job_name`` folder; {} for another name."""
    match = _JOB_NAME.match(folder_name)
    return match.groupdict() if match else {}


def plan_task_jobs(cfg, task: str) -> list:
    """Every job of ``task``'s search: learning rates x batch sizes x epochs x seeds."""
    learning_rates, batch_sizes, epochs = task_grid(cfg, search_task(cfg, task))
    return [PlannedJob(task, float(lr), int(bs), int(ep), int(seed))
            for lr in learning_rates for bs in batch_sizes for ep in epochs for seed in cfg.FINETUNE.SEEDS]


class SearchTree:
    """The planned jobs of one tree and the record each must carry to count as done."""

    def __init__(self, cfg, root: Path, random_init: bool):
        self.cfg, self.root, self.random_init = cfg, Path(root), random_init
        self.model = layout.finetune_model_path(cfg)
        self.settings = job_settings(cfg, random_init)
        self.tasks = [task_name(cfg, name) for name in cfg.FINETUNE.TASKS]
        self.source = task_name(cfg, cfg.FINETUNE.STILT.SOURCE)
        # The STILT targets start from the source's model: only those finetuned, and only with the source finetuned.
        stilt = cfg.FINETUNE.STILT
        self.targets = {task_name(cfg, name) for name in stilt.TARGETS} & set(self.tasks) - {self.source} \
            if stilt.ENABLED and self.source in self.tasks else set()
        self.jobs = {task: plan_task_jobs(cfg, task) for task in self.tasks}

    def job_dir(self, job) -> Path:
        return self.root / job.task / job.name

    def start_model(self, init_from=None) -> str:
        """The model a job starts from: for a STILT target (``init_from``: ``SOURCE/JOB``), the source job's."""
        return str(self.root / init_from / MODEL_SUBDIR) if init_from else self.model

    def expected(self, job, init_from=None) -> dict:
        """The record a completed ``job`` must carry; the inputs are stamped now, so that a file changed since the
        job ran makes it pending."""
        task = search_task(self.cfg, job.task)
        inputs = {"model": model_stamps(self.start_model(init_from)),
                  "data": data_stamps(data_files(self.cfg, task), self.cfg.FINETUNE.GLUE_DIR if task.is_glue else "")}
        if not task.is_glue:
            inputs["task"] = {field.lower(): task.own[field] for field in RESULT_FIELDS}
        return expected_record(job, self.model, init_from, self.settings, inputs)

    def is_done(self, job, init_from=None) -> bool:
        return is_completed(self.job_dir(job), self.expected(job, init_from))

    def stilt_init(self):
        """``init_from`` for the targets (``SOURCE/JOB``): the best completed source job (of STILT.SOURCE_CONFIG
        when set), or None when there is none.

        The stage asks only once the source's jobs have all been tried; a source job that failed and later
        succeeds may change the best, and the targets then rerun from the new one."""
        wanted = tuple(self.cfg.FINETUNE.STILT.SOURCE_CONFIG)
        jobs = [job for job in self.jobs[self.source] if not wanted or job.config_key == wanted]
        best = best_job(self.root / self.source, jobs, search_task(self.cfg, self.source).primary_metric, self.is_done)
        return f"{best.task}/{best.name}" if best else None

    def pending(self, tasks, init_from=None) -> list:
        return [job for task in tasks for job in self.jobs[task] if not self.is_done(job, init_from)]

    def counts_as_done(self, job, init) -> bool:
        """Done for the model it starts from: a STILT target from ``init`` (``stilt_init``), never without one."""
        if job.task in self.targets:
            return init is not None and self.is_done(job, init)
        return self.is_done(job)

    def counts(self) -> tuple:
        """(done, planned) over every job, STILT targets included."""
        init = self.stilt_init() if self.targets else None
        jobs = [job for task_jobs in self.jobs.values() for job in task_jobs]
        return sum(self.counts_as_done(job, init) for job in jobs), len(jobs)


def search_trees(cfg) -> list:
    """A ``SearchTree`` for every search this config asks for (the random-init baseline repeats the grid)."""
    trees = [SearchTree(cfg, layout.finetune_dir(cfg), False)]
    if cfg.FINETUNE.RANDOM_INIT_BASELINE:
        trees.append(SearchTree(cfg, layout.random_init_finetune_dir(cfg), True))
    return trees
