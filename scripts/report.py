"""What the result collection reports: the entries of ``results.json`` (each task's best, own tasks, the random-init
baseline, the pretraining run), ``report.md`` rendered from that same dictionary, so the two never disagree, and the
figure of the spread over seeds. Own tasks sit beside the GLUE tasks, not among them: the GLUE score and the zip are
GLUE's alone, so an own task's random-init figures live in its own entry rather than in the GLUE baseline table.
"""
import statistics
from pathlib import Path

from pipeline import layout
from pipeline.figures import pyplot, save_figure
from pipeline.manifest import read_json
from pretraining.metrics_log import read_metrics, split_metrics
from scripts.job_tables import ENTITY_FIGURES, entity_types, clock_duration, markdown_table, percent, seed_count

GLUE_NAME = "GLUE score"
DEMO_NAME = "Demo score (demo tasks, NOT GLUE)"


def _relative(path, run_dir) -> str:
    return str(path.relative_to(run_dir)) if path.is_relative_to(run_dir) else str(path)


def _config_entry(config) -> dict:
    return {"learning_rate": config.learning_rate, "batch_size": config.batch_size, "epochs": config.epochs}


def best_entry(best, run_dir) -> dict:
    """A TaskBest as plain data: the chosen configuration, its median and spread, and the submitted seed."""
    return {
        "primary_metric": best.metric,
        "config": _config_entry(best.config),
        "median": best.median,
        "spread": best.spread,
        "seeds": {str(job.seed): job.metrics[best.metric] for job in best.config.jobs},
        "median_metrics": best.median_metrics(),
        "best_seed": best.best_job.seed,
        "best_seed_metrics": dict(best.best_job.metrics),
        "best_job": _relative(best.best_job.path, run_dir),
        "init_from": best.best_job.init_from,
        "configs_tried": best.configs_tried,
        "max_seeds": best.max_seeds,
    }


def own_task_entry(best, random_best, random_run: bool, run_dir) -> dict:
    """An own task's entry: a GLUE task's fields plus its ``type``, ``random_init`` (the random-init search's best
    median on the same metric and what pretraining added; None when no random-init search ran), the best job's
    ``test_predictions`` files and, for a token task, its ``entity_types`` table."""
    random_init = {"median": None, "difference": None, "config": None, "best_seed": None, "best_job": None}
    if random_best is not None:
        random_init = {"median": random_best.median, "difference": best.median - random_best.median,
                       "config": _config_entry(random_best.config), "best_seed": random_best.best_job.seed,
                       "best_job": _relative(random_best.best_job.path, run_dir)}
    predictions = sorted(best.best_job.path.glob("predictions_*"))
    entry = {"type": best.search_task.type, **best_entry(best, run_dir),
             "random_init": random_init if random_run else None,
             "test_predictions": [_relative(path, run_dir) for path in predictions]}
    if best.search_task.is_token_level:
        metrics = best.best_job.metrics
        entry["entity_types"] = {kind: {figure: metrics.get(f"{kind}_{figure}") for figure in ENTITY_FIGURES}
                                 for kind in entity_types(metrics)}
    return entry


def failed_jobs(collection, run_dir) -> list:
    """Every job of the configured search whose last run failed (both trees), with its error and log."""
    trees = [("", collection.jobs), ("random init", collection.random_init_jobs or {})]
    return [{"task": task, "job": job.name, "tree": tree, "error": job.error or "no error recorded",
             "log": str(Path(_relative(job.path, run_dir)) / "job.log")}
            for tree, jobs in trees for task, results in jobs.items() for job in results if job.status == "failed"]


def baseline_comparison(pretrained: dict, random_init: dict) -> dict:
    """{task: {metric, pretrained, random_init, difference}} on the primary metric's best-configuration median."""
    rows = {}
    for task in dict.fromkeys([*pretrained, *random_init]):
        ours, theirs = pretrained.get(task), random_init.get(task)
        a, b = (ours.median if ours else None), (theirs.median if theirs else None)
        rows[task] = {"metric": (ours or theirs).metric, "pretrained": a, "random_init": b,
                      "difference": a - b if a is not None and b is not None else None}
    return rows


def _median_of(records, key):
    values = [r[key] for r in records if isinstance(r.get(key), (int, float))]
    return statistics.median(values) if values else None


def summarize_pretraining(cfg) -> dict:
    """The pretraining run summarised from its manifest and ``metrics.jsonl`` (docs/interfaces.md, pretrain
    section): steps, hours, final validation loss, tokens seen and throughput; ``available`` False with a reason
    when the run has no pretraining outputs (pretraining disabled, or finetuning an outside model)."""
    pretrain_dir = layout.pretrain_dir(cfg)
    manifest = read_json(pretrain_dir / "manifest.json")
    metrics_path = pretrain_dir / "metrics.jsonl"
    train, val = split_metrics(read_metrics(metrics_path))
    if not isinstance(manifest, dict) and not train and not val:
        reason = ("pretraining was disabled (PRETRAIN.ENABLED is False)" if not cfg.PRETRAIN.ENABLED
                  else "pretraining has not completed")
        return {"available": False, "reason": f"{reason}: no {pretrain_dir / 'manifest.json'}",
                "finetuned_model": layout.finetune_model_path(cfg)}
    manifest = manifest if isinstance(manifest, dict) else {}
    last_train = train[-1] if train else {}
    hours = manifest.get("hours")
    if hours is None and (train or val):
        hours = max(r.get("elapsed_s", 0) for r in train + val) / 3600
    tokens_seen = manifest.get("tokens_seen")
    tokens_per_s = _median_of(train, "tokens_per_s")
    if tokens_per_s is None and tokens_seen and hours:
        tokens_per_s = tokens_seen / (hours * 3600)
    return {
        "available": True,
        "complete": bool(manifest),  # False: summarised from metrics.jsonl of an unfinished run
        "steps": manifest.get("steps", last_train.get("step")),
        "hours": hours,
        "final_val_loss": manifest.get("final_val_loss", val[-1]["val_loss"] if val else None),
        # a run from PRETRAIN.INIT_FROM validates its starting model at step 0 (e.g. phase 2 starting from phase 1)
        "init_from": cfg.PRETRAIN.INIT_FROM,
        "initial_val_loss": val[0]["val_loss"] if val and val[0].get("step") == 0 else None,
        "final_train_loss": last_train.get("loss"),
        "tokens_seen": tokens_seen,
        "samples_per_s": manifest.get("samples_per_s", _median_of(train, "samples_per_s")),
        "tokens_per_s": tokens_per_s,
        "real_tokens_per_s": _median_of(train, "real_tokens_per_s"),  # None for runs logged before it existed
        "mfu": _median_of(train, "mfu"),
        "metrics_path": str(metrics_path) if train or val else "",
        "finetuned_model": layout.finetune_model_path(cfg),
    }


def task_label(task: str, demo) -> str:
    return f"{task} (demo: {demo['tasks'][task]['name']})" if demo and task in demo["tasks"] else task


def _demo_section(demo) -> list:
    lines = ["> **These are demo tasks, not GLUE.** The quickstart's data builder wrote them in the GLUE folder layout"
             " so the whole pipeline runs in minutes; their scores say nothing about GLUE and must not be compared"
             " with GLUE results.", ""]
    if demo.get("note"):
        lines += [f"> {demo['note']}", ""]
    rows = [[task, entry["name"], entry["rule"]] for task, entry in demo["tasks"].items()]
    return lines + ["## Demo tasks", "", markdown_table(["folder", "demo task", "rule"], rows), ""]


def _score_section(results) -> list:
    score, demo = results["glue_score"], results["demo"]
    lines = [f"## {DEMO_NAME if demo else GLUE_NAME}", "", f"**{score['line']}**", ""]
    rows = [[task_label(c["label"], demo) if c["label"] == c["task"] else c["label"], c["metric"],
             percent(c["value"]) if c["value"] is not None else "missing"] for c in score["columns"]]
    average = percent(score["score"]) if score["score"] is not None else "n/a"
    rows.append(["**average**" + ("" if score["complete"] else f" ({len(score['covered'])} of"
                                  f" {len(score['columns'])})"), "", f"**{average}**"])
    lines += [markdown_table(["column", "metric", "dev (%)"], rows), ""]
    if not score["complete"]:
        lines += [f"Missing from the average: {', '.join(score['missing'])}. The number above is NOT comparable to a"
                  " full GLUE score.", ""]
    lines += ["Each value is the median over seeds of the task's best configuration (best = highest median of the"
              " task's primary metric). WNLI is left out, as in the BERT paper.", ""]
    return lines


def _bests_section(results) -> list:
    demo = results["demo"]
    headers = ["task", "metric", "median (%)", "min-max (%)", "std", "seeds", "lr", "batch", "epochs", "best seed",
               "best seed (%)", "configs", "all jobs"]
    rows = []
    for task, entry in results["tasks"].items():
        spread, config = entry["spread"], entry["config"]
        rows.append([task_label(task, demo), entry["primary_metric"], percent(entry["median"]),
                     f"{percent(spread['min'])}-{percent(spread['max'])}", f"{100 * spread['std']:.2f}",
                     seed_count(spread, entry["max_seeds"]),
                     f"{config['learning_rate']:g}", config["batch_size"], f"{config['epochs']:g}",
                     entry["best_seed"], percent(entry["best_seed_metrics"][entry["primary_metric"]]),
                     entry["configs_tried"], f"[table]({results['tables'].get(task, '')})"])
    lines = ["## Best configuration per task", "", markdown_table(headers, rows), ""]
    lines += ["Test predictions come from the best seed of each best configuration. A seed count \"(of N)\" means"
              " some seeds of that configuration did not complete.", ""]
    if results["tasks_without_results"]:
        missing = "; ".join(f"{t}: {why}" for t, why in results["tasks_without_results"].items())
        lines += [f"Tasks without results: {missing}.", ""]
    return lines


def _failed_section(results) -> list:
    failed = results.get("failed_jobs") or []
    if not failed:
        return []
    lines = ["## Failed jobs", "", f"{len(failed)} job(s) failed every attempt and take no part in the selection;"
             " running the same command again retries them.", ""]
    for entry in failed:
        tree = f" ({entry['tree']})" if entry["tree"] else ""
        lines.append(f"- {entry['task']} `{entry['job']}`{tree}: {entry['error']} (log: `{entry['log']}`)")
    return lines + [""]


def _points(difference) -> str:
    """A difference of two fractions in percentage points, signed."""
    return "" if difference is None else f"{100 * difference:+.2f}"


def _baseline_section(results) -> list:
    baseline = results.get("random_init")
    if not baseline or not baseline["tasks"]:  # own tasks show theirs in their own table
        return []
    rows = [[task_label(task, results["demo"]), row["metric"], percent(row["pretrained"]) or "not run",
             percent(row["random_init"]) or "not run", _points(row["difference"])]
            for task, row in baseline["tasks"].items()]
    return ["## Pretrained vs random initialisation", "",
            "The same search and selection rule run on a randomly initialised model of the same shape"
            f" ({baseline['finetune_dir']}): the difference is what pretraining bought.", "",
            markdown_table(["task", "metric", "pretrained (%)", "random init (%)", "difference (points)"], rows), ""]


def _submission_section(results) -> list:
    sub = results["submission"]
    lines = ["## Test-server submission", ""]
    if sub.get("written"):
        lines.append(f"`{sub['path']}`: {len(sub['included'])} files ({', '.join(sub['included'])}), ready for"
                     " gluebenchmark.com." if not results["demo"] else
                     f"`{sub['path']}`: {len(sub['included'])} files. Built from DEMO tasks: shows the format only;"
                     " do not upload it to gluebenchmark.com.")
    else:
        lines.append(f"Not written: {sub['reason']}")
    lines.append("")
    lines += [f"- missing {name}.tsv: {why}" for name, why in sub.get("missing", {}).items()]
    lines += [f"- {note}" for note in sub.get("notes", [])]
    return lines + [""]


def _number(value, fmt: str) -> str:
    if value is None:
        return "n/a"
    try:
        return format(value, fmt)
    except (TypeError, ValueError):  # e.g. a float step count from an older manifest
        return str(value)


def _pretraining_section(results) -> list:
    info = results["pretraining"]
    lines = ["## Pretraining", ""]
    if not info["available"]:
        return lines + [f"No pretraining summary: {info['reason']}. Finetuned model: `{info['finetuned_model']}`.",
                        ""]
    if not info["complete"]:
        lines += ["Pretraining has no manifest (it did not finish): the numbers come from its metrics.jsonl.", ""]
    rows = [["steps", _number(info["steps"], "d")],
            ["hours", _number(info["hours"], ".2f") + (f" ({clock_duration(info['hours'] * 3600)})"
                                                      if info["hours"] is not None else "")],
            ["final validation loss", _number(info["final_val_loss"], ".4f")],
            ["final training loss", _number(info["final_train_loss"], ".4f")],
            ["tokens seen", _number(info["tokens_seen"], ",d")],
            ["throughput (samples/s)", _number(info["samples_per_s"], ",.1f")],
            ["throughput (tokens/s)", _number(info["tokens_per_s"], ",.0f")]]
    if info.get("real_tokens_per_s") is not None:  # padding excluded: what short documents lose shows here
        rows.append(["throughput (real tokens/s, padding excluded)", _number(info["real_tokens_per_s"], ",.0f")])
    if info.get("mfu") is not None:
        rows.append(["MFU (median)", f"{100 * info['mfu']:.1f}%"])
    if info.get("init_from"):
        rows[:0] = [["started from (PRETRAIN.INIT_FROM)", f"`{info['init_from']}`"],
                    ["validation loss at step 0", _number(info.get("initial_val_loss"), ".4f")]]
    return lines + [markdown_table(["", "value"], rows), ""]


def _plots_section(results) -> list:
    titles = {"pretraining_curves": "Pretraining loss and learning rate", "seed_spread": "Spread over seeds"}
    lines = ["## Plots", ""] if results["plots"] else []
    for key, path in results["plots"].items():
        lines += [f"![{titles.get(key, key)}]({path})", ""]
    return lines


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
            row += [percent(random.get("median")) or "not run", _points(random.get("difference"))]
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


def render_report(results: dict) -> str:
    """report.md from the results dictionary."""
    title = f"# ExtremeBERT results: {results['run']['pretrain_id']}"
    lines = [title, "", f"Run folder: `{results['run']['run_dir']}`; finetuned model:"
             f" `{results['pretraining']['finetuned_model']}`; collected {results['run']['collected_at']}.", ""]
    if results["demo"]:
        lines += _demo_section(results["demo"])
    if results["tasks"] or results["tasks_without_results"]:  # a run of own tasks alone has no GLUE section
        lines += _score_section(results) + _bests_section(results)
    for section in (own_tasks_section, _failed_section, _baseline_section, _submission_section, _pretraining_section,
                    _plots_section):
        lines += section(results)
    if results["tables"]:
        links = ", ".join(f"[{task_label(t, results['demo'])}]({p})" for t, p in results["tables"].items())
        lines += ["## Every job", "", f"Per-task tables of every job (also as CSV): {links}.", ""]
    return "\n".join(lines)


def plot_seed_spread(bests: dict, path, names=None):
    """For each task, the primary metric (%) of every seed of its best configuration, labelled by ``names`` (the
    demo tasks' own names) where given; None without tasks."""
    if not bests:
        return None
    plt = pyplot()
    tasks = list(bests)
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(tasks) + 2), 4.5))
    series = [[100 * v for v in bests[t].config.values(bests[t].metric)] for t in tasks]
    ax.boxplot(series, showfliers=False)
    for position, values in enumerate(series, start=1):
        ax.scatter([position] * len(values), values, s=18, zorder=3)
    labels = [f"{(names or {}).get(t, t)}\n({bests[t].metric})" for t in tasks]
    ax.set_xticks(range(1, len(tasks) + 1), labels, fontsize=8)
    ax.set_ylabel("dev score (%)")
    ax.set_title("Best configuration of each task: spread over seeds")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path, dpi=120)
