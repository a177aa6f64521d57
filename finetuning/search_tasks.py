"""The tasks a search runs, GLUE's and one's own (``FINETUNE.OWN_TASKS``), seen the same way: name, type, metrics,
the metric the search selects on, the files a job reads, and the script and task flags of its job.

Light on purpose (no torch): the runner and result collection read these in their own processes.
"""
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

from finetuning.glue_data import local_task_files
from finetuning.glue_tasks import GLUE_TASKS, canonical_task_name
from finetuning.own_data import count_rows
from pipeline.errors import ConfigError
from pipeline.own_task_fields import DATA_FILE_FIELDS, DEFAULT_LABEL_COLUMN, metric_of, reported_metrics

FINETUNING = Path(__file__).resolve().parent
RUN_GLUE = FINETUNING / "run_glue.py"
RUN_NER = FINETUNING / "run_ner.py"
# A task of one's own without a grid of its own uses the LARGE grid from this many training rows: GLUE's LARGE tasks
# (QNLI, QQP, MNLI) have 105k-393k rows, its SMALL ones 67k (SST-2) or fewer.
LARGE_TASK_ROWS = 100_000
# The fields of an own task that change what its jobs compute (not its grid or METRIC, which only select): a job
# records them, so that an edit reruns the task's jobs.
RESULT_FIELDS = ("TYPE", "TEXT_COLUMNS", "LABEL_COLUMN", "ID_COLUMN", "POSITIVE_LABEL", "LABEL_ALL_TOKENS",
                 "MAX_SEQ_LENGTH")


@dataclass(frozen=True)
class SearchTask:
    name: str  # a canonical GLUE name, or the own task's name
    type: str  # classification | regression | token_classification
    metrics: tuple  # what its jobs report
    primary_metric: str  # what the search maximises
    own: Optional[object] = None  # the FINETUNE.OWN_TASKS section; None for a GLUE task

    @property
    def is_glue(self) -> bool:
        return self.own is None

    @property
    def is_token_level(self) -> bool:
        return self.type == "token_classification"


def task_name(cfg, name: str) -> str:
    """The name a task goes by: an own task's name as declared, else the canonical GLUE spelling."""
    if str(name) in cfg.FINETUNE.OWN_TASKS:
        return str(name)
    try:
        return canonical_task_name(name)
    except ConfigError:
        own = ", ".join(cfg.FINETUNE.OWN_TASKS) or "none declared"
        raise ConfigError(f"unknown task {name!r}: neither a GLUE task ({', '.join(GLUE_TASKS)}) nor one of"
                          f" FINETUNE.OWN_TASKS ({own})") from None


def search_task(cfg, name: str) -> SearchTask:
    name = task_name(cfg, name)
    own = cfg.FINETUNE.OWN_TASKS.get(name)
    if own is None:
        glue = GLUE_TASKS[name]
        kind = "regression" if glue.is_regression else "classification"
        return SearchTask(name, kind, glue.metrics, glue.primary_metric)
    return SearchTask(name, own.TYPE, reported_metrics(own.TYPE, own.POSITIVE_LABEL), metric_of(own), own)


def data_files(cfg, task: SearchTask) -> list:
    """Every local file a job of ``task`` reads (none for GLUE from the Hub)."""
    if task.is_glue:
        return local_task_files(cfg.FINETUNE.GLUE_DIR, GLUE_TASKS[task.name]) if cfg.FINETUNE.GLUE_DIR else []
    return [Path(task.own[field]) for field in DATA_FILE_FIELDS if task.own[field]]


def predicts(task: SearchTask) -> bool:
    """Whether the task's jobs predict a test set: every GLUE task (the server's), an own task with a TEST_FILE."""
    return task.is_glue or bool(task.own.TEST_FILE)


def task_flags(task: SearchTask) -> list:
    """The job script's flags that say which task, and how to read its data."""
    if task.is_glue:
        return ["--task_name", task.name]
    own = task.own
    flags = ["--train_file", own.TRAIN_FILE, "--validation_file", own.VALIDATION_FILE]
    flags += ["--test_file", own.TEST_FILE] if own.TEST_FILE else []
    if task.type == "token_classification":  # run_ner.py's own defaults: tags, else ner_tags
        flags += ["--return_entity_level_metrics"]
        flags += ["--label_column_name", own.LABEL_COLUMN] if own.LABEL_COLUMN else []
        flags += ["--text_column_name", own.TEXT_COLUMNS[0]] if own.TEXT_COLUMNS else []
        flags += ["--label_all_tokens"] if own.LABEL_ALL_TOKENS else []
    else:
        label = own.LABEL_COLUMN or DEFAULT_LABEL_COLUMN[own.TYPE]
        flags += ["--label_column_name", label, "--task_type", task.type, "--metric_name", task.primary_metric]
        flags += ["--text_column_names", ",".join(own.TEXT_COLUMNS)] if own.TEXT_COLUMNS else []
        flags += ["--positive_label", own.POSITIVE_LABEL] if own.POSITIVE_LABEL else []
    flags += ["--id_column_name", own.ID_COLUMN] if own.ID_COLUMN else []
    flags += ["--max_seq_length", str(own.MAX_SEQ_LENGTH)] if own.MAX_SEQ_LENGTH else []
    return flags


def _training_rows(path) -> int:
    """``count_rows`` once per version of the file: every plan of a process (both trees, the checks, result
    collection) asks again, and counting reads the whole file."""
    stat = Path(path).stat()
    return _rows_of(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _rows_of(path: str, size: int, mtime_ns: int) -> int:
    return count_rows(path)


def task_grid(cfg, task: SearchTask):
    """(learning rates, batch sizes, epochs): the LARGE grid for the tasks in SEARCH.LARGE.TASKS, SMALL for the
    other GLUE tasks; an own task takes its own lists where given, the rest from the LARGE grid when it has
    ``LARGE_TASK_ROWS`` training rows or is listed there, else from SMALL."""
    large = {task_name(cfg, name) for name in cfg.FINETUNE.SEARCH.LARGE.TASKS}
    own = task.own
    is_large = task.name in large or (own is not None and not (own.LEARNING_RATES and own.BATCH_SIZES and own.EPOCHS)
                                      and Path(own.TRAIN_FILE).is_file()
                                      and _training_rows(own.TRAIN_FILE) >= LARGE_TASK_ROWS)
    grid = cfg.FINETUNE.SEARCH.LARGE if is_large else cfg.FINETUNE.SEARCH.SMALL
    if own is None:
        return list(grid.LEARNING_RATES), list(grid.BATCH_SIZES), list(grid.EPOCHS)
    return (list(own.LEARNING_RATES or grid.LEARNING_RATES), list(own.BATCH_SIZES or grid.BATCH_SIZES),
            list(own.EPOCHS or grid.EPOCHS))
