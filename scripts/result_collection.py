"""Result collection stage (``collect_test_result``): finetune job folders -> per-task tables
(``summarize_validation``, scripts/summarize_val.py), best configurations and GLUE score (``collect_best_validation``,
scripts/collect_best_val.py), report and the test-server zip (``translate_test_result``,
scripts/translate_test_result.py); outputs in docs/interfaces.md. Top-level imports stay light: the runner imports
this module in its own process.
"""
import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from finetuning.glue_tasks import FINETUNED_TASKS, SUBMISSION_FILES
from finetuning.search_plan import plan_task_jobs
from finetuning.search_tasks import search_task, task_name
from pipeline import layout
from pipeline.config import build_config, load_resolved_config, merge_mapping, opts_to_mapping
from pipeline.defaults import SETTINGS
from pipeline.errors import ConfigError, DataError, run_reporting_errors
from pipeline.log_setup import add_level_flags, setup_script_logging
from pipeline.manifest import StageStatus, manifest_status, read_manifest, write_json_atomic, write_manifest
from pipeline.run_ids import file_stamp
from pipeline.validation import value_problems
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
    """What this stage writes, in this order (the status check takes the first two or three)."""
    top = layout.results_dir(cfg)
    return [top / "report.md", top / "results.json", submission_path(cfg), tables_dir(cfg)]


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
    if glue_dir:  # the test files the submission's row counts are checked against
        tests = [test_file_path(glue_dir, name) for name in SUBMISSION_FILES]
        settings["test_files"] = [file_stamp(path, str(path.relative_to(glue_dir))) for path in tests if path.is_file()]
    own = {task.name: dict(task.own) for task in tasks.values() if not task.is_glue}
    if own:  # only then: the settings of a GLUE-only run, and so its manifest, stay as they were
        settings["own_tasks"] = own
    return settings


def result_collection_status(cfg) -> StageStatus:
    """Complete when the manifest's record of the completed jobs matches the jobs on disk and the outputs exist."""
    def outputs_ok() -> bool:  # report.md and results.json, and the zip when the manifest says it was written
        zipped = (read_manifest(tables_dir(cfg)) or {}).get("submission_written")
        return all(path.exists() for path in _outputs(cfg)[:3 if zipped else 2])

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
    if problem := demo_tasks_problem(glue_dir):
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
    """Write results/<TASK>.md and .csv (and <TASK>_random_init.* for the baseline) and print the tables; returns
    {task: relative path of its markdown table}."""
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
    write_task_tables(collection.jobs, collection.tasks, out_dir, titles)
    for task, jobs in collection.jobs.items():
        log.info(task_markdown(collection.tasks[task], jobs, titles[task]))
    if random_jobs := collection.random_init_jobs:
        titles = {task: f"{task_label(task, demo)}, random initialisation" for task in random_jobs}
        write_task_tables(random_jobs, collection.tasks, out_dir, titles, suffix="_random_init")
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


def translate_test_result(cfg, collection: Optional[Collection] = None, allow_partial=None, output=None) -> dict:
    """Check the best jobs' test predictions and write the submission zip; returns the submission record, refused
    when a file is missing unless ``allow_partial`` (default: RESULT_COLLECTION.ALLOW_PARTIAL). A zip that is not
    written now is removed, so that no stale one from an earlier run remains."""
    from scripts.submission import plan_submission, write_submission_zip

    collection = collection or gather(cfg)
    allow_partial = cfg.RESULT_COLLECTION.ALLOW_PARTIAL if allow_partial is None else allow_partial
    path = Path(output) if output else submission_path(cfg)
    record = {"path": str(path), "written": False}
    if not has_glue_task(cfg):
        record["reason"] = "FINETUNE.TASKS holds no GLUE task (the zip is for gluebenchmark.com: GLUE tasks only)"
        path.unlink(missing_ok=True)
        return record
    plan = plan_submission(collection.bests, cfg.FINETUNE.GLUE_DIR)
    record.update(plan.as_dict())
    if plan.missing and not allow_partial:
        listed = "; ".join(f"{name}.tsv ({why})" for name, why in plan.missing.items())
        record.update(refused=True, reason=f"glue_submission.zip not written: {len(plan.missing)} submission files"
                      f" missing: {listed}. Finetune the missing tasks, or set RESULT_COLLECTION.ALLOW_PARTIAL True"
                      " to write a partial zip")
    elif not plan.files:
        record["reason"] = "no task has test predictions"
    if "reason" in record:
        path.unlink(missing_ok=True)
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
        if kept and task.name not in collection.bests:
            jobs = collection.jobs.get(task.name, [])
            reasons[task.name] = f"none of its {len(jobs)} jobs completed" if jobs else "no jobs"
    return reasons


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
    from scripts.report import (DEMO_NAME, GLUE_NAME, baseline_comparison, best_entry, failed_jobs, own_task_entry,
                                summarize_pretraining)

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
        "own_tasks": {task: own_task_entry(best, (random_bests or {}).get(task), random_bests is not None, run_dir)
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
    When the zip is refused for missing tasks the report is still written (it says what is missing) and then
    DataError is raised, so the stage is not marked complete."""
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


# The result-collection scripts' config: from ``--config`` (+ ``--opts``) like main.py, with the foundation's checks
# and this stage's own (the other stages' concern inputs a finished run no longer reads), or from a run folder's own
# ``config.yaml`` (``--run-dir``), which also works after the folder was moved.
def make_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the config arguments every result-collection script takes; ``description`` is its docstring."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="the YAML file the pipeline ran with")
    source.add_argument("--run-dir", "--run_dir", dest="run_dir",
                        help="a run folder (OUTPUT_ROOT/runs/<PRETRAIN.ID>) holding config.yaml")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="override config keys, e.g. --opts RESULT_COLLECTION.WRITE_PLOTS False")
    add_level_flags(parser)
    return parser


def config_from_args(args):
    """The resolved config named by ``--config`` or ``--run-dir``, with ``--opts`` applied."""
    if args.config:
        return build_config(args.config, args.opts, extra_checks=[validate_config])
    run_dir = Path(args.run_dir).resolve()
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(f"--run-dir {run_dir}: no config.yaml there (the pipeline writes one into every run folder)")
    if run_dir.parent.name != "runs":
        raise ConfigError(f"--run-dir {run_dir}: a run folder lives at OUTPUT_ROOT/runs/<PRETRAIN.ID>; use --config"
                          " for a folder elsewhere")
    cfg = load_resolved_config(config_path)
    cfg.defrost()
    # The folder is where the user says it is, even if it was moved since the run.
    cfg.SYSTEM.OUTPUT_ROOT = str(run_dir.parent.parent)
    cfg.PRETRAIN.ID = run_dir.name
    problems: list = []
    merge_mapping(cfg, opts_to_mapping(list(args.opts), problems), problems)  # the same checked merge as main.py
    problems += value_problems(cfg, SETTINGS)
    if problems:
        raise ConfigError(problems)
    cfg.freeze()
    return cfg


def run_cli(parser: argparse.ArgumentParser, action, argv=None) -> int:
    """Parse ``argv``, build the config and call ``action(cfg, args)``. A user's error is reported as main.py reports
    it: one ``error:`` line per problem and the same exit code (2 for the config, 3 for the disk, 1 otherwise)."""
    args = parser.parse_args(argv)
    setup_script_logging(args)

    def run() -> None:  # what ``action`` returns is not an exit code
        action(config_from_args(args), args)

    return run_reporting_errors(run)
