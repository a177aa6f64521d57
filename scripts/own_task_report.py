"""What results.json and report.md say about tasks of one's own (``FINETUNE.OWN_TASKS``): the figures an own task
adds to its best-configuration entry (random init, test predictions, a token task's entity types), and the report's
own-task section.

Own tasks sit beside the GLUE tasks, not among them: the GLUE score and the submission zip are GLUE's alone, so an
own task's pretrained-against-random-init figures live in its own entry rather than in the GLUE baseline table.
"""
from scripts.job_tables import ENTITY_FIGURES, entity_types, markdown_table, percent, seed_count


def _relative(path, run_dir) -> str:
    return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)


def entity_table(metrics: dict) -> dict:
    """{entity type: {precision, recall, f1, number}} from a token job's flattened per-type metrics."""
    return {kind: {figure: metrics.get(f"{kind}_{figure}") for figure in ENTITY_FIGURES}
            for kind in entity_types(metrics)}


def _random_init_figures(best, random_best, run_dir) -> dict:
    """The random-init search's best median on the same metric, and what pretraining added to it."""
    if random_best is None:
        return {"median": None, "difference": None, "config": None, "best_seed": None, "best_job": None}
    config = random_best.config
    return {"median": random_best.median, "difference": best.median - random_best.median,
            "config": {"learning_rate": config.learning_rate, "batch_size": config.batch_size,
                       "epochs": config.epochs},
            "best_seed": random_best.best_job.seed, "best_job": _relative(random_best.best_job.path, run_dir)}


def own_task_extras(best, random_best, random_run: bool, run_dir) -> dict:
    """What an own task's entry holds beyond a GLUE task's: ``random_init`` (None when no random-init search ran),
    the best job's ``test_predictions`` files and, for a token task, its ``entity_types`` table."""
    extras = {"random_init": _random_init_figures(best, random_best, run_dir) if random_run else None,
              "test_predictions": [_relative(path, run_dir)
                                   for path in sorted(best.best_job.path.glob("predictions_*"))]}
    if best.search_task.is_token_level:
        extras["entity_types"] = entity_table(best.best_job.metrics)
    return extras


def _entity_section(task: str, entry: dict) -> list:
    rows = [[kind, percent(row["precision"]), percent(row["recall"]), percent(row["f1"]),
             "" if row["number"] is None else f"{row['number']:g}"] for kind, row in entry["entity_types"].items()]
    if not rows:
        return [f"{task}: the best job reported no per-type figures.", ""]
    return [f"### {task}: entity types", "", f"Best job `{entry['best_job']}` (entity-level, dev set):", "",
            markdown_table(["entity type", "precision (%)", "recall (%)", "F1 (%)", "number"], rows), ""]


def own_tasks_section(results: dict) -> list:
    """report.md's section on own tasks: one row per task, then each token task's entity types."""
    own, missing = results.get("own_tasks") or {}, results.get("own_tasks_without_results") or {}
    if not own and not missing:
        return []
    with_random = any(entry["random_init"] is not None for entry in own.values())
    with_stilt = any(entry["init_from"] for entry in own.values())
    headers = ["task", "type", "metric", "pretrained (%)"]
    headers += ["random init (%)", "difference (points)"] if with_random else []
    headers += ["min to max (%)", "seeds", "lr", "batch", "epochs", "best seed"]
    headers += (["STILT from"] if with_stilt else []) + ["all jobs"]
    rows = []
    for task, entry in own.items():
        spread, config, random = entry["spread"], entry["config"], entry["random_init"] or {}
        row = [task, entry["type"], entry["primary_metric"], percent(entry["median"])]
        if with_random:
            difference = random.get("difference")
            row += [percent(random.get("median")) or "not run",
                    "" if difference is None else f"{100 * difference:+.2f}"]
        row += [f"{percent(spread['min'])} to {percent(spread['max'])}", seed_count(spread, entry["max_seeds"]),
                f"{config['learning_rate']:g}", config["batch_size"], f"{config['epochs']:g}", entry["best_seed"]]
        row += [entry["init_from"] or ""] if with_stilt else []
        rows.append(row + [f"[table]({results['tables'].get(task, '')})"])
    lines = ["## Own tasks", "", "Tasks of one's own (FINETUNE.OWN_TASKS), chosen by the same rule as the GLUE tasks:"
             " the configuration with the highest median over seeds of the task's metric, then its best seed."
             " They are not part of the GLUE score or the submission zip.", ""]
    if with_random:
        lines += ["Random init: the same search on a randomly initialised model of the same shape; the difference is"
                  " what pretraining bought.", ""]
    lines += [markdown_table(headers, rows), ""]
    if missing:
        lines += [f"Own tasks without results: {'; '.join(f'{t}: {why}' for t, why in missing.items())}.", ""]
    predictions = [f"{task}: " + ", ".join(f"`{path}`" for path in entry["test_predictions"])
                   for task, entry in own.items() if entry["test_predictions"]]
    if predictions:
        lines += ["Test predictions of the best seed of each best configuration: " + "; ".join(predictions) + ".",
                  ""]
    for task, entry in own.items():
        if "entity_types" in entry:
            lines += _entity_section(task, entry)
    return lines
