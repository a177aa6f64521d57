"""The model card of a finetuned model (a job's ``model/``): what the job recorded, gathered for
``pipeline.model_card``.

Written inside the model folder before it is swapped in (``job_run._finish``), so a kept model never lacks its
card. The model-index holds the dev metrics under the task table's names (those of ``eval_results.json``); a GLUE
task read from the Hub names ``nyu-mll/glue`` as its dataset, one read from a folder (GLUE_DIR, the quickstart's
demo tasks) or one's own files names no hub dataset, only the folder or files, in the body.
"""
from finetuning.glue_data import HUB_DATASET
from pipeline.defaults import is_local_path
from pipeline.model_card import command_line, finetuned_card

SKIPPED_METRICS = ("epoch",)  # not a result


def _task(job) -> dict:
    data_args, task = job.data_args, job.data.task
    name = getattr(task, "name", None) or data_args.task_name or data_args.dataset_name or "own task"
    kind = "token-classification" if job.ner_args is not None else "text-classification"
    if data_args.task_name and not data_args.data_dir:
        return {"type": kind, "name": name, "dataset_type": HUB_DATASET, "dataset_on_hub": True,
                "dataset_config": getattr(task, "hub_config", None)}
    if data_args.dataset_name and not is_local_path(data_args.dataset_name):
        return {"type": kind, "name": name, "dataset_type": data_args.dataset_name, "dataset_on_hub": True,
                "dataset_config": data_args.dataset_config_name}
    return {"type": kind, "name": name, "dataset_type": name}


def _data(job) -> str:
    d = job.data_args
    if d.task_name:
        return f"GLUE layout folder `{d.data_dir}`" if d.data_dir else f"`{HUB_DATASET}` ({d.task_name})"
    if d.dataset_name:
        return f"`{d.dataset_name}`"
    return ", ".join(f"`{path}`" for path in (d.train_file, d.validation_file) if path) or None


def _hardware(job) -> str:
    import torch

    name = torch.cuda.get_device_name(job.device) if job.device.type == "cuda" else "cpu"
    return f"{job.world_size} x {name}"


def card_facts(job, train_metrics, evaluation: dict, steps) -> dict:
    """The facts of ``pipeline.model_card.finetuned_card`` for ``job`` (a ``job_run.LoadedJob``)."""
    m, args = job.model_args, job.args
    base = f"{m.model_name_or_path} (its architecture only: random initialisation)" if m.random_init \
        else m.model_name_or_path
    results = {name: value for name, value in evaluation.items()
               if not name.startswith("eval_") and name not in SKIPPED_METRICS}
    train = train_metrics or {}
    return {
        "license": m.license, "task": _task(job), "dev_results": results,
        "title": f"{job.out.name} ({_task(job)['name']})", "base_model": base,
        "base_model_on_hub": not m.random_init and not is_local_path(base), "data": _data(job),
        "learning_rate": f"{args.learning_rate:g}", "batch_size": args.per_device_train_batch_size * job.world_size
        * args.gradient_accumulation_steps, "epochs": f"{args.num_train_epochs:g}", "seed": args.seed,
        "steps": steps, "train_seconds": train.get("train_runtime"), "hardware": _hardware(job),
        "precision": args.precision, "train_loss": train.get("train_loss"), "command": command_line(),
    }


def card_text(job, train_metrics, evaluation: dict, steps) -> str:
    return finetuned_card(card_facts(job, train_metrics, evaluation, steps))
