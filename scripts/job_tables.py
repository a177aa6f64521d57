"""Per-task tables of every finetune job (hyperparameters, seed, every dev metric, wall time, status): markdown in
percentages for people (``results/<TASK>.md``, also printed), CSV with raw fractions for spreadsheets. A token task's
per-entity-type figures are in its CSV only (four columns per type would bury the markdown's overall ones).
"""
import csv
import io
from pathlib import Path

from finetuning.search_tasks import SearchTask
from pipeline.manifest import write_text_atomic
from scripts.best_config import group_by_config


def percent(value) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def seed_count(spread: dict, max_seeds: int) -> str:
    """The seeds behind a best configuration's median, "(of N)" when some of its seeds did not complete."""
    return f"{spread['seeds']}" + (f" (of {max_seeds})" if spread["seeds"] < max_seeds else "")


def clock_duration(seconds) -> str:
    """A job's wall time in a table: ``H:MM:SS`` (the console's durations are ``pipeline.log_setup``'s)."""
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def markdown_table(headers, rows) -> str:
    """A GitHub-flavoured markdown table; ``|`` inside a cell is escaped."""
    def cell(value):
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


ENTITY_FIGURES = ("precision", "recall", "f1", "number")


def entity_types(metrics: dict) -> list:
    """The entity types of a token job's ``<TYPE>_precision/_recall/_f1/_number`` figures, sorted (HF run_ner's
    flattened per-type metrics; ``_number`` is what marks a type)."""
    return sorted(key[:-len("_number")] for key in metrics
                  if key.endswith("_number") and not key.startswith("eval_") and key != "_number")


def _metric_names(task: SearchTask, jobs, raw: bool) -> list:
    """The task's metrics first (table order), then eval_loss, then anything else the jobs reported."""
    names = list(task.metrics) + ["eval_loss"]
    extra = {key for job in jobs for key in job.metrics} - set(names)
    if task.is_token_level and not raw:
        extra -= {f"{prefix}{kind}_{figure}" for job in jobs for kind in entity_types(job.metrics)
                  for figure in ENTITY_FIGURES for prefix in ("", "eval_")}
    return names + sorted(extra)


def _status(job) -> str:
    if job.problem:
        return f"{job.status}: {job.problem}"
    if job.status == "failed" and job.error:
        return f"failed: {str(job.error).splitlines()[0][:120]}"
    return job.status


def _sorted_jobs(jobs) -> list:
    key = lambda job: tuple((x is None, x or 0) for x in (*job.config, job.seed)) + (job.name,)  # noqa: E731
    return sorted(jobs, key=key)


def task_rows(task: SearchTask, jobs, raw: bool = False):
    """(headers, rows) of a task's table; ``raw`` keeps numbers unformatted (for CSV)."""
    names = _metric_names(task, jobs, raw)
    with_stilt = any(job.init_from for job in jobs)
    headers = ["job", "learning_rate", "batch_size", "epochs", "seed"] + (["init_from"] if with_stilt else [])
    headers += names + ["wall_time_s" if raw else "wall time", "status"]
    rows = []
    for job in _sorted_jobs(jobs):
        row = [job.name, job.learning_rate, job.batch_size, job.epochs, job.seed]
        row = row if raw else [job.name] + ["" if v is None else f"{v:g}" for v in row[1:]]
        if with_stilt:
            row.append(job.init_from or "")
        for name in names:
            value = job.metrics.get(name)
            if raw or not isinstance(value, (int, float)):
                row.append("" if value is None else value)
            else:
                row.append(f"{value:.4f}" if name == "eval_loss" or name not in task.metrics else percent(value))
        row.append(job.wall_time_s if raw else clock_duration(job.wall_time_s))
        row.append(_status(job))
        rows.append(row)
    return headers, rows


def task_markdown(task: SearchTask, jobs, title: str = "") -> str:
    headers, rows = task_rows(task, jobs)
    counted = sum(job.counted for job in jobs)
    configs = len(group_by_config(jobs))
    heading = f"## {title or task.name}\n\n{len(jobs)} jobs, {counted} completed, {configs} configurations" \
              f" (metrics in %, dev set; primary metric: {task.primary_metric})\n\n"
    return heading + markdown_table(headers, rows) + "\n"


def task_csv(task: SearchTask, jobs) -> str:
    headers, rows = task_rows(task, jobs, raw=True)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([headers, *rows])
    return buffer.getvalue()


def write_task_tables(jobs_by_task: dict, tasks: dict, out_dir: Path, titles: dict, suffix: str = "") -> None:
    """Write ``<TASK><suffix>.md`` and ``.csv`` for every task of ``jobs_by_task`` into ``out_dir`` (``tasks``:
    {name: SearchTask}, ``titles``: {name: the markdown's heading})."""
    for name, jobs in jobs_by_task.items():
        write_text_atomic(out_dir / f"{name}{suffix}.md", task_markdown(tasks[name], jobs, titles[name]))
        write_text_atomic(out_dir / f"{name}{suffix}.csv", task_csv(tasks[name], jobs))
