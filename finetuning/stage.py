"""The finetune stage: the GLUE hyperparameter search with seeds, STILT, and AX, as one job per child process.

    finetune/<TASK>/<JOB>/               job.json, eval_results.json, predictions_*.tsv, job.log (model/ for STILT)
    finetune/<TASK>/.cache/              tokenized splits shared by the task's jobs
    finetune_random_init/<TASK>/<JOB>/   the same grid from random weights (FINETUNE.RANDOM_INIT_BASELINE)

STILT targets wait for the source task's search and start from its best job. A failed job runs again
(FINETUNE.RETRIES) before it is recorded as failed; the stage fails only when a task is left without any completed
job. Top-level imports stay light: the runner imports this module for status and validation.
"""
import logging
from pathlib import Path

from finetuning.glue_data import HUB_DATASET
from finetuning.job_process import forks, start_job_server
from finetuning.search_plan import search_trees
from finetuning.search_scheduler import JobScheduler, job_slots, pretokenize
from finetuning.search_validation import validate_config  # noqa: F401 (the stage's config checks, for the runner)
from pipeline import layout
from pipeline.defaults import is_local_path
from pipeline.errors import DataError, ExtremeBertError
from pipeline.manifest import StageStatus

log = logging.getLogger(__name__)


class FinetuneJobsFailed(ExtremeBertError):
    """A task has no completed job: every job of it that ran failed (each was retried FINETUNE.RETRIES times)."""


def finetune_status(cfg) -> StageStatus:
    """Complete when every planned job of the current grid has completed for the current model and settings."""
    searches = search_trees(cfg)
    done, total = map(sum, zip(*(search.counts() for search in searches)))
    reads = [layout.finetune_model_path(cfg), cfg.FINETUNE.GLUE_DIR or f"hub:{HUB_DATASET}"]
    writes = [str(search.root) for search in searches]
    detail = "complete" if done == total else ("not run yet" if done == 0 else f"{done}/{total} jobs completed")
    return StageStatus(reads=reads, writes=writes, complete=done == total, clear_paths=writes,
                       detail=f"{detail} ({total} jobs)" if done == total else detail)


def _work(searches: list, pending: dict, rows: dict) -> dict:
    """Each pending job's size for the ETA: training rows x epochs."""
    return {(job, search.random_init): max(1, rows.get(job.task, 1)) * job.epochs
            for search in searches for job in pending[search.root]}


def _tasks_without_success(searches: list, failed: list) -> list:
    """(tree, task) of every task with a failed job and no completed one: the search has no result for it."""
    failing = {(search.root, job.task) for search, job, _ in failed}
    out = []
    for search in searches:
        init = search.stilt_init() if search.targets else None
        for task in search.tasks:
            if (search.root, task) in failing and not any(search.counts_as_done(job, init)
                                                          for job in search.jobs[task]):
                out.append((search, task))
    return out


def _finish(searches: list, scheduler: JobScheduler) -> None:
    """Say what failed; stop with an error only when a task has no completed job at all."""
    if scheduler.failed:
        log.warning("\n".join([f"{len(scheduler.failed)} job(s) failed; they are recorded as failed (the report lists"
                                f" them) and rerun by the next run of the same command:"]
                               + [f"  {search.job_dir(job)}: {record['error']}"
                                  for search, job, record in scheduler.failed]))
    hopeless = _tasks_without_success(searches, scheduler.failed)
    if hopeless:
        names = ", ".join(f"{task}{' (random init)' if search.random_init else ''}" for search, task in hopeless)
        search, task = hopeless[0]
        first = next(record for s, job, record in scheduler.failed if s is search and job.task == task)
        raise FinetuneJobsFailed(f"no successful configuration for {names}: every job that ran failed (first:"
                                 f" {first['error']}); see the job.log files above, then rerun the same command")
    log.info(f"finetuning complete: {scheduler.finished} job(s) run, {len(scheduler.failed)} failed")


def tasks_keeping_models(cfg, search) -> set:
    """The tasks whose jobs save their finetuned model (``model/``): the STILT source, whose best job the targets
    start from, and, when PUBLISH sends the best finetuned models to the Hub, every task of the pretrained tree."""
    keep = {search.source} if search.targets else set()
    if cfg.PUBLISH.ENABLED and cfg.PUBLISH.WHAT in ("best_finetuned", "both") and not search.random_init:
        keep |= set(search.tasks)
    return keep


def finetune(cfg) -> None:
    """Run every job of the search that has not completed for the current model and settings."""
    model = layout.finetune_model_path(cfg)
    if is_local_path(model) and not Path(model).is_dir():
        raise DataError(f"model to finetune not found: {model} (run the pretrain stage first, or set"
                        f" FINETUNE.MODEL_NAME_OR_PATH)")
    searches = search_trees(cfg)
    tasks = searches[0].tasks
    first = {search.root: search.pending([t for t in search.tasks if t not in search.targets]) for search in searches}
    later = {search.root: search.pending(sorted(search.targets), search.stilt_init()) if search.targets else []
             for search in searches}
    pending_tasks = sorted({job.task for jobs in [*first.values(), *later.values()] for job in jobs})
    if pending_tasks and any(forks(gpus, processes) for gpus, processes in job_slots(cfg)):
        start_job_server()  # its imports overlap the tokenizing
    rows = pretokenize(cfg, pending_tasks) if pending_tasks else {}
    scheduler = JobScheduler(cfg, {**_work(searches, first, rows), **_work(searches, later, rows)})
    progress = scheduler.progress
    planned = sum(len(jobs) for search in searches for jobs in search.jobs.values())
    log.info(f"finetune: {progress.total} of {planned} jobs to run ({', '.join(tasks)})")
    for search in searches:  # first everything that does not wait for STILT (the source included)
        scheduler.run(search, first[search.root], save_tasks=tasks_keeping_models(cfg, search))
    for search in searches:
        if not search.targets:
            continue
        init_from = search.stilt_init()
        expected = {(job, search.random_init) for job in later[search.root]}
        jobs = search.pending(sorted(search.targets), init_from) if init_from else []
        progress.add(_work([search], {search.root: jobs}, rows))
        for key in expected - {(job, search.random_init) for job in jobs}:
            progress.finish(key, None)  # not to run after all (done for the chosen source, or no source)
        if init_from is None:
            log.warning(f"STILT: no completed {search.source} job; {', '.join(sorted(search.targets))} wait for the"
                        f" next run")
            continue
        if jobs:
            log.info(f"STILT: {', '.join(sorted(search.targets))} start from {init_from} ({len(jobs)} jobs to run)")
            scheduler.run(search, jobs, init_from=init_from, save_tasks=tasks_keeping_models(cfg, search))
    _finish(searches, scheduler)
