"""Result collection stage: finetune job folders -> per-task tables, best configurations, GLUE score, report and
the test-server zip. Tasks of one's own (``FINETUNE.OWN_TASKS``) go through the same tables and selection rule and
get a report table of their own; the GLUE score and the zip are GLUE's alone.

    collect_test_result(cfg)        the stage entry (runs everything below)
    summarize_validation(cfg)       per-task tables of every job          (scripts/summarize_val.py)
    collect_best_validation(cfg)    best configuration per task + score   (scripts/collect_best_val.py)
    translate_test_result(cfg)      glue_submission.zip                   (scripts/translate_test_result.py)

Outputs in the run folder: report.md, results.json, glue_submission.zip and results/ (tables, plots and this
stage's manifest). Top-level imports stay light: the runner imports this module in its own process.
"""
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from finetuning.glue_tasks import FINETUNED_TASKS, SUBMISSION_FILES
from finetuning.search_plan import plan_task_jobs
from finetuning.search_tasks import search_task, task_name
from pipeline import layout
from pipeline.errors import ConfigError, DataError
from pipeline.manifest import StageStatus, manifest_status, read_manifest, write_json_atomic, write_manifest
from pipeline.run_ids import file_stamp
from quickstart.demo_tasks import demo_tasks_path, demo_tasks_problem, load_demo_tasks
from scripts.best_config import glue_score, select_all
from scripts.finetune_jobs import jobs_fingerprint, load_jobs, result_tasks
from scripts.submission import test_file_path

log = logging.getLogger(__name__)

STAGE = "result_collection"
SUBMISSION_NAME = "glue_submission.zip"


def tables_dir(cfg) -> Path:
    """results/: per-task tables, plots and this stage's manifest (all of it written by this stage only)."""
    return layout.results_dir(cfg) / "results"


def submission_path(cfg) -> Path:
    return layout.results_dir(cfg) / SUBMISSION_NAME


def _outputs(cfg) -> list:
    top = layout.results_dir(cfg)
    return [top / "report.md", top / "results.json", submission_path(cfg), tables_dir(cfg)]


def _test_file_stamps(glue_dir) -> list:
    """Size and mtime of the test files the submission's row counts are checked against."""
    paths = [test_file_path(glue_dir, name) for name in SUBMISSION_FILES]
    return [file_stamp(path, str(path.relative_to(glue_dir))) for path in paths if path.is_file()]


def has_glue_task(cfg) -> bool:
    """Whether FINETUNE.TASKS names a GLUE task (else there is no GLUE score to compute and no zip to write)."""
    return any(search_task(cfg, name).is_glue for name in cfg.FINETUNE.TASKS)


def _settings(cfg) -> dict:
    """What the outputs depend on: the completed jobs (both trees), the pretraining record, the test files, demo
    labelling, the own tasks' sections (METRIC chooses their best) and this stage's options."""
    glue_dir = cfg.FINETUNE.GLUE_DIR
    random_dir = layout.random_init_finetune_dir(cfg)
    tasks = result_tasks(cfg)
    settings = {
        "finetune_jobs": jobs_fingerprint(layout.finetune_dir(cfg), tasks),
        "random_init_jobs": jobs_fingerprint(random_dir, tasks) if random_dir.is_dir() else None,
        "pretrain": [file_stamp(layout.pretrain_dir(cfg) / name) for name in ("manifest.json", "metrics.jsonl")],
        "glue_dir": glue_dir,
        "demo_tasks": [file_stamp(demo_tasks_path(glue_dir))] if glue_dir else None,
        "tasks": list(cfg.FINETUNE.TASKS),
        "options": {k: v for k, v in cfg.RESULT_COLLECTION.items() if k != "ENABLED"},
    }
    if glue_dir:
        settings["test_files"] = _test_file_stamps(glue_dir)
    own = {task.name: dict(task.own) for task in tasks.values() if not task.is_glue}
    if own:  # only then: the settings of a GLUE-only run, and so its manifest, stay as they were
        settings["own_tasks"] = own
    return settings


def result_collection_status(cfg) -> StageStatus:
    """Complete when the manifest's record of the completed jobs matches the jobs on disk and the outputs exist."""
    def outputs_ok() -> bool:
        manifest = read_manifest(tables_dir(cfg)) or {}
        needed = [layout.results_dir(cfg) / "report.md", layout.results_dir(cfg) / "results.json"]
        if manifest.get("submission_written"):
            needed.append(submission_path(cfg))
        return all(path.exists() for path in needed)

    reads = [layout.finetune_dir(cfg), layout.pretrain_dir(cfg) / "manifest.json"]
    if cfg.FINETUNE.GLUE_DIR:
        reads.append(cfg.FINETUNE.GLUE_DIR)
    # Only what this stage writes: the run folder also holds pretraining and finetuning outputs.
    return manifest_status(tables_dir(cfg), _settings(cfg), reads=reads, writes=_outputs(cfg), outputs_ok=outputs_ok,
                           clear_paths=_outputs(cfg))


def validate_config(cfg) -> list:
    """Problems with the inputs this stage reads that can be seen from the config alone (cheap)."""
    if not cfg.RESULT_COLLECTION.ENABLED:
        return []
    problems = []
    glue_dir = cfg.FINETUNE.GLUE_DIR
    if glue_dir and not cfg.FINETUNE.ENABLED and not Path(glue_dir).is_dir():
        # With finetuning enabled the general checks already report this.
        problems.append(f"FINETUNE.GLUE_DIR: folder does not exist: {glue_dir} (result collection counts the test"
                        " rows there)")
    problem = demo_tasks_problem(glue_dir) if glue_dir and Path(glue_dir).is_dir() else ""
    if problem:
        problems.append(f"FINETUNE.GLUE_DIR: {problem}")
    for task in cfg.FINETUNE.TASKS:
        try:
            task_name(cfg, task)
        except ConfigError as e:
            problems.append(f"FINETUNE.TASKS: {e}")
    return problems


@dataclass
class Collection:
    """Everything read from disk, and the selection made on it."""
    tasks: dict  # task -> SearchTask, of every task whose folders were read (GLUE's and the own ones)
    jobs: dict  # task -> [JobResult]
    bests: dict  # task -> TaskBest
    demo: Optional[dict]
    random_init_jobs: Optional[dict]  # None when no random-init tree exists
    random_init_bests: Optional[dict]


def planned_jobs_only(cfg, jobs: dict, root: Path) -> dict:
    """``jobs`` less the folders the configured search does not plan (an earlier grid, a task no longer listed),
    so the tables and the selection describe the search in the config; says how many were left out."""
    planned = {(job.task, job.name) for name in cfg.FINETUNE.TASKS for job in plan_task_jobs(cfg, task_name(cfg, name))}
    kept = {task: [job for job in results if (task, job.path.name) in planned] for task, results in jobs.items()}
    left_out = sum(len(results) for results in jobs.values()) - sum(len(results) for results in kept.values())
    if left_out:
        log.info(f"note: {left_out} job folder(s) under {root} are not in the configured search (FINETUNE.TASKS, "
                 "SEEDS and SEARCH grids) and are left out of the results")
    return {task: results for task, results in kept.items() if results}


def gather(cfg) -> Collection:
    """Read the planned jobs of both finetune trees and select each task's best configuration."""
    tasks = result_tasks(cfg)
    finetune_dir = layout.finetune_dir(cfg)
    jobs = planned_jobs_only(cfg, load_jobs(finetune_dir, tasks), finetune_dir)
    random_dir = layout.random_init_finetune_dir(cfg)
    random_jobs = planned_jobs_only(cfg, load_jobs(random_dir, tasks), random_dir) if random_dir.is_dir() else None
    if cfg.FINETUNE.get("RANDOM_INIT_BASELINE", False) and not random_jobs:
        log.warning(f"FINETUNE.RANDOM_INIT_BASELINE is set but {random_dir} holds no jobs")
    return Collection(tasks=tasks, jobs=jobs, bests=select_all(jobs, tasks),
                      demo=load_demo_tasks(cfg.FINETUNE.GLUE_DIR), random_init_jobs=random_jobs,
                      random_init_bests=select_all(random_jobs, tasks) if random_jobs is not None else None)


def _require_jobs(cfg, collection: Collection) -> None:
    if not collection.jobs and not cfg.RESULT_COLLECTION.ALLOW_PARTIAL:
        raise DataError(f"no finetune jobs under {layout.finetune_dir(cfg)}: run the finetune stage first"
                        " (FINETUNE.ENABLED True), or set RESULT_COLLECTION.ALLOW_PARTIAL True for a report without"
                        " finetuning results")


def summarize_validation(cfg, collection: Optional[Collection] = None) -> dict:
    """Write results/<TASK>.md and .csv (and <TASK>_random_init.* for the baseline) and print the tables.

    Returns {task: relative path of its markdown table}.
    """
    from scripts.job_tables import task_markdown, write_task_tables
    from scripts.report import task_label

    collection = collection or gather(cfg)
    _require_jobs(cfg, collection)
    demo = collection.demo
    out_dir = tables_dir(cfg)
    # Tables of tasks whose jobs are gone would otherwise survive next to the fresh ones.
    for task in collection.tasks:
        for name in (f"{task}.md", f"{task}.csv", f"{task}_random_init.md", f"{task}_random_init.csv"):
            (out_dir / name).unlink(missing_ok=True)
    titles = {task: task_label(task, demo) for task in collection.jobs}
    write_task_tables(collection.jobs, collection.tasks, out_dir, titles=titles)
    for task, jobs in collection.jobs.items():
        log.info(task_markdown(collection.tasks[task], jobs, task_label(task, demo)))
    random_jobs = collection.random_init_jobs
    if random_jobs:
        titles = {task: f"{task_label(task, demo)}, random initialisation" for task in random_jobs}
        write_task_tables(random_jobs, collection.tasks, out_dir, titles=titles, suffix="_random_init")
    return {task: f"results/{task}.md" for task in collection.jobs}


def _print_bests(collection: Collection, score_line: str) -> None:
    from scripts.job_tables import percent

    width = max([6] + [len(task) for task in collection.bests])
    for task, best in collection.bests.items():
        spread = best.spread
        log.info(f"{task:{width}} {best.metric:9} median {percent(best.median):>6} over {spread['seeds']} seeds"
                 f" (min {percent(spread['min'])}, max {percent(spread['max'])})  {best.config.describe()}"
                 f"  best seed {best.best_job.seed}")
    log.info(score_line)


def _score_line(cfg, collection: Collection) -> str:
    from scripts.report import DEMO_NAME, GLUE_NAME

    if not has_glue_task(cfg):
        return f"{GLUE_NAME}: none, FINETUNE.TASKS holds no GLUE task"
    return glue_score(collection.bests).describe(DEMO_NAME if collection.demo else GLUE_NAME)


def collect_best_validation(cfg, collection: Optional[Collection] = None) -> dict:
    """Print each task's best configuration and the GLUE score; returns {task: TaskBest}."""
    collection = collection or gather(cfg)
    _require_jobs(cfg, collection)
    _print_bests(collection, _score_line(cfg, collection))
    return collection.bests


def _refusal(missing: dict) -> str:
    listed = "; ".join(f"{name}.tsv ({why})" for name, why in missing.items())
    return (f"glue_submission.zip not written: {len(missing)} submission files missing: {listed}. Finetune the"
            " missing tasks, or set RESULT_COLLECTION.ALLOW_PARTIAL True to write a partial zip")


def translate_test_result(cfg, collection: Optional[Collection] = None, allow_partial=None, output=None) -> dict:
    """Check the best jobs' test predictions and write the submission zip; returns the submission record.

    Refuses (DataError naming the missing files) when a file is missing, unless ``allow_partial`` (default:
    RESULT_COLLECTION.ALLOW_PARTIAL). A stale zip from an earlier run is removed when a new one is refused.
    """
    from scripts.submission import plan_submission, write_submission_zip

    collection = collection or gather(cfg)
    allow_partial = cfg.RESULT_COLLECTION.ALLOW_PARTIAL if allow_partial is None else allow_partial
    path = Path(output) if output else submission_path(cfg)
    if not has_glue_task(cfg):
        path.unlink(missing_ok=True)
        return {"path": str(path), "written": False,
                "reason": "FINETUNE.TASKS holds no GLUE task (the zip is for gluebenchmark.com: GLUE tasks only)"}
    plan = plan_submission(collection.bests, cfg.FINETUNE.GLUE_DIR)
    record = {"path": str(path), "written": False, **plan.as_dict()}
    if plan.missing and not allow_partial:
        path.unlink(missing_ok=True)
        record["reason"] = _refusal(plan.missing)
        record["refused"] = True
        return record
    if not plan.files:
        path.unlink(missing_ok=True)
        record["reason"] = "no task has test predictions"
        return record
    write_submission_zip(plan, path)
    record["written"] = True
    log.info(f"wrote {path} ({len(plan.files)} files"
             + (f"; PARTIAL, missing: {', '.join(plan.missing)}" if plan.missing else "") + ")")
    for note in plan.notes:
        log.info(f"note: {note}")
    return record


def _tasks_without_results(cfg, collection: Collection, own: bool = False) -> dict:
    """{task: why} for the configured GLUE tasks (``own``: own tasks) that have no best configuration."""
    reasons = {}
    for task in (search_task(cfg, name) for name in cfg.FINETUNE.TASKS):
        kept = not task.is_glue if own else task.name in FINETUNED_TASKS  # AX has no jobs of its own
        if not kept or task.name in collection.bests:
            continue
        jobs = collection.jobs.get(task.name, [])
        reasons[task.name] = f"none of its {len(jobs)} jobs completed" if jobs else "no jobs"
    return reasons


def failed_jobs(collection: Collection, run_dir: Path) -> list:
    """Every job of the configured search whose last run failed (both trees), with its error and log."""
    trees = [("", collection.jobs), ("random init", collection.random_init_jobs or {})]
    return [{"task": task, "job": job.name, "tree": tree, "error": job.error or "no error recorded",
             "log": str(job.path.relative_to(run_dir) / "job.log") if job.path.is_relative_to(run_dir)
             else str(job.path / "job.log")}
            for tree, jobs in trees for task, results in jobs.items() for job in results if job.status == "failed"]


def _draw_plots(cfg, collection: Collection) -> dict:
    from pretraining.metrics_log import plot_training_curves
    from scripts.report import plot_seed_spread

    plots = {}
    if plot_training_curves(layout.pretrain_dir(cfg) / "metrics.jsonl", tables_dir(cfg) / "pretraining_curves.png"):
        plots["pretraining_curves"] = "results/pretraining_curves.png"
    names = {task: entry["name"] for task, entry in (collection.demo or {"tasks": {}})["tasks"].items()}
    if plot_seed_spread(collection.bests, tables_dir(cfg) / "seed_spread.png", names):
        plots["seed_spread"] = "results/seed_spread.png"
    return plots


def build_results(cfg, collection: Collection, tables: dict, submission: dict, plots: dict) -> dict:
    """The results.json dictionary (report.md is rendered from it)."""
    from scripts.own_task_report import own_task_extras
    from scripts.report import DEMO_NAME, GLUE_NAME, baseline_comparison, best_entry, summarize_pretraining

    run_dir = layout.run_dir(cfg)
    score = glue_score(collection.bests)
    glue_bests = {task: best for task, best in collection.bests.items() if best.search_task.is_glue}
    own_bests = {task: best for task, best in collection.bests.items() if not best.search_task.is_glue}
    random_bests = collection.random_init_bests
    results = {
        "run": {"run_dir": str(run_dir), "pretrain_id": cfg.PRETRAIN.ID,
                "collected_at": time.strftime("%Y-%m-%d %H:%M:%S")},
        "demo": collection.demo,
        "glue_score": {**score.as_dict(), "name": DEMO_NAME if collection.demo else GLUE_NAME,
                       "line": _score_line(cfg, collection)},
        "tasks": {task: best_entry(best, run_dir) for task, best in glue_bests.items()},
        "tasks_without_results": _tasks_without_results(cfg, collection),
        # Beside the GLUE tasks, never in the GLUE score or the zip; each with its random-init figures.
        "own_tasks": {task: {"type": best.search_task.type, **best_entry(best, run_dir),
                             **own_task_extras(best, (random_bests or {}).get(task), random_bests is not None,
                                               run_dir)}
                      for task, best in own_bests.items()},
        "own_tasks_without_results": _tasks_without_results(cfg, collection, own=True),
        "failed_jobs": failed_jobs(collection, run_dir),
        "random_init": None,
        "submission": submission,
        "pretraining": summarize_pretraining(cfg),
        "plots": plots,
        "tables": tables,
    }
    if random_bests is not None:
        glue_random_bests = {task: best for task, best in random_bests.items() if best.search_task.is_glue}
        results["random_init"] = {
            "finetune_dir": str(layout.random_init_finetune_dir(cfg)),
            "tasks": baseline_comparison(glue_bests, glue_random_bests),
            "glue_score": glue_score(random_bests).as_dict(),
        }
    return results


def collect_test_result(cfg) -> dict:
    """The stage: tables, bests, GLUE score, plots, report.md/results.json, the submission zip, then the manifest.

    Prediction files are checked before anything is written. When the zip is refused for missing tasks the report
    is still written (it says what is missing) and then DataError is raised, so the stage is not marked complete.
    """
    from pipeline.manifest import write_text_atomic
    from scripts.report import render_report

    settings = _settings(cfg)  # taken first: the manifest describes the inputs as they were read
    collection = gather(cfg)
    _require_jobs(cfg, collection)
    options = cfg.RESULT_COLLECTION
    if options.WRITE_SUBMISSION:
        submission = translate_test_result(cfg, collection)
    else:
        submission_path(cfg).unlink(missing_ok=True)
        submission = {"path": str(submission_path(cfg)), "written": False,
                      "reason": "RESULT_COLLECTION.WRITE_SUBMISSION is False"}
    tables = summarize_validation(cfg, collection)
    plots = _draw_plots(cfg, collection) if options.WRITE_PLOTS else {}
    results = build_results(cfg, collection, tables, submission, plots)
    top = layout.results_dir(cfg)
    write_json_atomic(top / "results.json", results)
    write_text_atomic(top / "report.md", render_report(results))
    _print_bests(collection, results["glue_score"]["line"])
    log.info(f"report: {top / 'report.md'}")
    if submission.get("refused"):
        raise DataError(submission["reason"])
    write_manifest(tables_dir(cfg), STAGE, settings, submission_written=submission["written"],
                   glue_score=results["glue_score"]["score"], demo=bool(collection.demo))
    return results
