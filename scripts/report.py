"""``results.json`` (everything the stage found, machine-readable) and ``report.md`` rendered from it.

The markdown is rendered from the same dictionary that is written as JSON, so the two never disagree.
"""
from scripts.result_tables import format_duration, markdown_table, percent

GLUE_NAME = "GLUE score"
DEMO_NAME = "Demo score (demo tasks, NOT GLUE)"


def best_entry(best, run_dir) -> dict:
    """A TaskBest as plain data: the chosen configuration, its median and spread, and the submitted seed."""
    config = best.config
    return {
        "primary_metric": best.metric,
        "config": {"learning_rate": config.learning_rate, "batch_size": config.batch_size, "epochs": config.epochs},
        "median": best.median,
        "spread": best.spread,
        "seeds": {str(job.seed): job.metrics[best.metric] for job in config.jobs},
        "median_metrics": best.median_metrics(),
        "best_seed": best.best_job.seed,
        "best_seed_metrics": dict(best.best_job.metrics),
        "best_job": str(best.best_job.path.relative_to(run_dir)) if best.best_job.path.is_relative_to(run_dir)
        else str(best.best_job.path),
        "init_from": best.best_job.init_from,
        "configs_tried": best.configs_tried,
        "max_seeds": best.max_seeds,
    }


def baseline_comparison(pretrained: dict, random_init: dict) -> dict:
    """{task: {metric, pretrained, random_init, difference}} on the primary metric's best-configuration median."""
    rows = {}
    for task in list(dict.fromkeys(list(pretrained) + list(random_init))):
        ours, theirs = pretrained.get(task), random_init.get(task)
        a = ours.median if ours else None
        b = theirs.median if theirs else None
        rows[task] = {"metric": (ours or theirs).metric, "pretrained": a, "random_init": b,
                      "difference": a - b if a is not None and b is not None else None}
    return rows


def _task_label(task: str, demo) -> str:
    if demo and task in demo["tasks"]:
        return f"{task} (demo: {demo['tasks'][task]['name']})"
    return task


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
    rows = [[_task_label(c["label"], demo) if c["label"] == c["task"] else c["label"], c["metric"],
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
        seeds = f"{spread['seeds']}" + (f" (of {entry['max_seeds']})" if spread["seeds"] < entry["max_seeds"] else "")
        rows.append([_task_label(task, demo), entry["primary_metric"], percent(entry["median"]),
                     f"{percent(spread['min'])}-{percent(spread['max'])}", f"{100 * spread['std']:.2f}", seeds,
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


def _baseline_section(results) -> list:
    baseline = results.get("random_init")
    if not baseline:
        return []
    rows = [[_task_label(task, results["demo"]), row["metric"], percent(row["pretrained"]) or "not run",
             percent(row["random_init"]) or "not run",
             "" if row["difference"] is None else f"{100 * row['difference']:+.2f}"]
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
    for name, why in sub.get("missing", {}).items():
        lines.append(f"- missing {name}.tsv: {why}")
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
            ["hours", _number(info["hours"], ".2f") + (f" ({format_duration(info['hours'] * 3600)})"
                                                      if info["hours"] is not None else "")],
            ["final validation loss", _number(info["final_val_loss"], ".4f")],
            ["final training loss", _number(info["final_train_loss"], ".4f")],
            ["tokens seen", _number(info["tokens_seen"], ",d")],
            ["throughput (samples/s)", _number(info["samples_per_s"], ",.1f")],
            ["throughput (tokens/s)", _number(info["tokens_per_s"], ",.0f")]]
    if info.get("mfu") is not None:
        rows.append(["MFU (median)", f"{100 * info['mfu']:.1f}%"])
    if info.get("init_from"):
        rows[:0] = [["started from (PRETRAIN.INIT_FROM)", f"`{info['init_from']}`"],
                    ["validation loss at step 0", _number(info.get("initial_val_loss"), ".4f")]]
    return lines + [markdown_table(["", "value"], rows), ""]


def _plots_section(results) -> list:
    plots = results["plots"]
    if not plots:
        return []
    titles = {"pretraining_curves": "Pretraining loss and learning rate", "seed_spread": "Spread over seeds"}
    lines = ["## Plots", ""]
    for key, path in plots.items():
        lines += [f"![{titles.get(key, key)}]({path})", ""]
    return lines


def render_report(results: dict) -> str:
    """report.md from the results dictionary."""
    title = f"# ExtremeBERT results: {results['run']['pretrain_id']}"
    lines = [title, "", f"Run folder: `{results['run']['run_dir']}`; finetuned model:"
             f" `{results['pretraining']['finetuned_model']}`; collected {results['run']['collected_at']}.", ""]
    if results["demo"]:
        lines += _demo_section(results["demo"])
    lines += _score_section(results)
    lines += _bests_section(results)
    lines += _failed_section(results)
    lines += _baseline_section(results)
    lines += _submission_section(results)
    lines += _pretraining_section(results)
    lines += _plots_section(results)
    if results["tables"]:
        links = ", ".join(f"[{_task_label(t, results['demo'])}]({p})" for t, p in results["tables"].items())
        lines += ["## Every job", "", f"Per-task tables of every job (also as CSV): {links}.", ""]
    return "\n".join(lines)
