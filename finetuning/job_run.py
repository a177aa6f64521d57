"""One finetuning job, in process (``run``, what ``run_glue.py`` and ``run_ner.py`` call once their flags are
checked): load the model, the tokenizer and the data, train with the lean loop, evaluate, predict, and write the
result files and, with --save_model, the finetuned model with its card.
"""
import json
import logging
import math
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Optional

import torch
from safetensors import SafetensorError
from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification,
                          AutoTokenizer, set_seed)

from finetuning import job_checkpoints as checkpoints
from finetuning.arguments import DataTrainingArguments, ModelArguments, TrainingArguments, hub_repo
from finetuning.glue_data import HUB_DATASET
from finetuning.job_record import MODEL_SUBDIR
from finetuning.lean_model import keep_freed_memory, make_lean
from finetuning.metrics import dev_metrics, remove_stale_results, write_results
from finetuning.search_progress import ProgressFile
from finetuning.token_encoding import load_token_task_data, needs_prefix_space, token_dev_metrics, word_predictions
from finetuning.tokenized_data import load_task_data
from finetuning.train_loop import (StepInterval, TrainingDiverged, TrainingMonitor, TrainSettings, format_metrics,
                                   plan_steps, predict, train)
from pipeline.defaults import SETTINGS_BY_KEY, is_local_path
from pipeline.errors import DataError, first_line
from pipeline.hub_publish import publish_folder
from pipeline.init_checkpoint import input_positions
from pipeline.manifest import write_json_atomic, write_text_atomic
from pipeline.model_card import command_line, finetuned_card, write_card
from pipeline.model_files import check_weight_files, write_model_folder
from pipeline.tensorboard_log import ScalarWriter
from pipeline.tokenizer_loading import check_vocabulary
from pretraining.convert_checkpoint import old_format_error

log = logging.getLogger(__name__)


def _log(message: str) -> None:
    log.info(f"[{time.strftime('%H:%M:%S')}] {message}")  # a job's lines keep their clock, as the HF Trainer's


def refuse_old_format(model_path: str) -> None:
    """A model folder of the old pre-LN format (model type ``extremebert``) stops here with the command that
    converts it, rather than with transformers' "does not recognize this architecture"."""
    message = old_format_error(model_path)
    if message:
        raise DataError(message)


def load_tokenizer(model_path: str, **hub_options):
    """``AutoTokenizer`` for ``model_path``; ``hub_options`` go to ``from_pretrained`` (revision, token, ...)."""
    refuse_old_format(model_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, **hub_options)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot load a tokenizer from {model_path}: {first_line(e)}")
    check_vocabulary(tokenizer, model_path)
    return tokenizer


def load_model(model_path: str, task, random_init: bool = False, config_name: str = "", **hub_options):
    """``AutoModelForSequenceClassification`` (``AutoModelForTokenClassification`` for a token-level task) for
    ``task``; a head of another size (STILT) starts fresh."""
    refuse_old_format(model_path)
    label_kwargs = {"num_labels": 1, "problem_type": "regression"} if task.is_regression else {
        "num_labels": len(task.labels), "problem_type": None if task.token_level else "single_label_classification",
        "id2label": dict(enumerate(task.labels)), "label2id": {label: i for i, label in enumerate(task.labels)}}
    auto_model = AutoModelForTokenClassification if task.token_level else AutoModelForSequenceClassification
    try:
        config = AutoConfig.from_pretrained(config_name or model_path, **label_kwargs, **hub_options)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot load a model config from {model_path}: {first_line(e)}")
    if random_init:
        return auto_model.from_config(config)
    check_weight_files(model_path)  # a truncated file is named here; the library would not name it
    try:
        return auto_model.from_pretrained(model_path, config=config, ignore_mismatched_sizes=True, **hub_options)
    except (OSError, SafetensorError) as e:
        raise DataError(f"cannot load the model weights from {model_path}: {first_line(e)}") from e


def fit_to_positions(model_args: ModelArguments, data_args: DataTrainingArguments, **hub_options) -> None:
    """Cut --max_seq_length to the model's positions, with a note, as the HF example cuts it to the tokenizer's
    limit: a longer row would index past the position table. A config that cannot be read is left to
    ``load_model``, which says why."""
    name = model_args.config_name or model_args.model_name_or_path
    try:
        positions = input_positions(AutoConfig.from_pretrained(name, **hub_options).to_dict())
    except (OSError, ValueError):
        return
    if positions is not None and data_args.max_seq_length > positions:
        log.warning(f"--max_seq_length {data_args.max_seq_length} exceeds the {positions} positions of {name}"
                    f" (max_position_embeddings); using {positions}")
        data_args.max_seq_length = positions


def hub_options(model_args) -> dict:
    """The ``from_pretrained`` options the flags set (only those that differ from the defaults)."""
    options = {"cache_dir": model_args.cache_dir, "token": model_args.token,
               "revision": model_args.model_revision if model_args.model_revision != "main" else None,
               "trust_remote_code": model_args.trust_remote_code or None}
    return {key: value for key, value in options.items() if value is not None}


def _setup_device(args: TrainingArguments):
    """(device, rank, world_size); under torchrun each rank drives its LOCAL_RANK GPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() and not args.use_cpu
    if world_size == 1:
        return torch.device("cuda" if use_cuda else "cpu"), 0, 1
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    return device, int(os.environ.get("RANK", "0")), world_size


def _prediction_strings(task, logits, encoded=None) -> list:
    if task.token_level:  # a sentence's word tags, space-separated
        return [" ".join(tags) for tags in word_predictions(encoded, logits, task.labels)]
    if task.name == "STS-B":
        return [f"{min(5.0, max(0.0, float(value))):.3f}" for value in logits[:, 0]]  # the server's range
    if task.is_regression:
        return [f"{float(value):.3f}" for value in logits[:, 0]]
    return [task.labels[i] for i in logits.argmax(axis=1)]


def prepare_output_dir(args: TrainingArguments) -> tuple:
    """(output folder, checkpoint to resume from or None), as the HF example decides: the newest checkpoint in a
    non-empty folder unless --overwrite_output_dir, which trains from scratch; a non-empty folder without
    checkpoints needs --overwrite_output_dir."""
    out = Path(args.output_dir)
    resume = None
    if args.do_train:
        if args.resume_from_checkpoint:
            resume = Path(args.resume_from_checkpoint)
        elif args.overwrite_output_dir:
            removed = checkpoints.remove_checkpoints(out)
            if removed:
                _log(f"--overwrite_output_dir: removed {', '.join(removed)}; training from scratch")
        elif (resume := checkpoints.latest_checkpoint(out)) is None and out.is_dir() and any(out.iterdir()):
            raise DataError(f"output folder {out} already exists and is not empty; pass --overwrite_output_dir")
    out.mkdir(parents=True, exist_ok=True)
    return out, resume


def train_settings(data_args: DataTrainingArguments, args: TrainingArguments) -> TrainSettings:
    return TrainSettings(
        batch_size=args.per_device_train_batch_size, learning_rate=args.learning_rate, epochs=args.num_train_epochs,
        max_steps=args.max_steps, gradient_accumulation_steps=args.gradient_accumulation_steps,
        weight_decay=args.weight_decay, adam_betas=(args.adam_beta1, args.adam_beta2),
        adam_epsilon=args.adam_epsilon, max_grad_norm=args.max_grad_norm, lr_scheduler_type=args.lr_scheduler_type,
        lr_scheduler_kwargs=json.loads(args.lr_scheduler_kwargs) if args.lr_scheduler_kwargs else {},
        warmup_steps=args.warmup_steps, warmup_ratio=args.warmup_ratio,
        seed=args.seed if args.data_seed is None else args.data_seed, sampling=args.train_sampling_strategy,
        precision=args.precision, pad_to=data_args.max_seq_length if data_args.pad_to_max_length else 0)


def run_settings(model_args: ModelArguments, data_args: DataTrainingArguments, args: TrainingArguments,
                 world_size: int, ner_args=None) -> dict:
    """What a checkpoint must share with this run to be resumed by it."""
    d = data_args
    data = {"task": d.task_name, "data_dir": d.data_dir, "dataset": [d.dataset_name, d.dataset_config_name],
            "train_file": d.train_file, "max_seq_length": d.max_seq_length, "max_train_samples": d.max_train_samples}
    return {"model_name_or_path": model_args.model_name_or_path, "random_init": model_args.random_init,
            "config_name": model_args.config_name, "seed": args.seed, "world_size": world_size, **data,
            **asdict(train_settings(data_args, args)), **({"ner": asdict(ner_args)} if ner_args else {})}


@dataclass
class LoadedJob:
    """What one job has loaded (flags, device, tokenizer, model, data): what training, evaluation and prediction
    share."""
    model_args: ModelArguments
    data_args: DataTrainingArguments
    args: TrainingArguments
    out: Path
    device: object
    rank: int
    world_size: int
    tokenizer: object
    model: object
    data: object  # TaskData
    report: object = None  # WandbReport or None
    tensorboard: object = None  # pipeline.tensorboard_log.ScalarWriter (--report_to tensorboard) or None
    ner_args: object = None  # NerArguments of a token-classification job (run_ner.py)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def predict(self, encoded):
        pad_to = self.data_args.max_seq_length if self.data_args.pad_to_max_length else 0
        return predict(self.model, encoded, batch_size=self.args.per_device_eval_batch_size, device=self.device,
                       pad_id=self.pad_id, precision=self.args.precision, pad_to=pad_to)

    def evaluate(self, names, step: Optional[int] = None) -> tuple:
        """(metrics under the task table's names, ``eval_*`` metrics) over the dev splits ``names``; ``step``: the
        training step evaluated (None: an untrained model). A non-finite dev loss fails the job."""
        plain, hf = {}, {}
        for name in names:
            data = self.data.dev[name]
            started = time.time()
            logits, loss = self.predict(data)
            if loss is not None and not math.isfinite(loss):
                if step is not None:
                    raise TrainingDiverged(f"{name} dev loss", loss, step, self.args.learning_rate)
                raise DataError(f"the {name} dev loss of {self.model_args.model_name_or_path} is {loss}: its weights"
                                f" give non-finite outputs")
            batches, runtime = -(-len(data) // self.args.per_device_eval_batch_size), time.time() - started
            if self.data.task.token_level:
                split_plain, split_hf = token_dev_metrics(self.data.task, data, logits, loss, runtime, batches)
            else:
                split_plain, split_hf = dev_metrics(self.data.task, name, logits, data.labels, loss, runtime, batches)
            plain.update(split_plain)
            plain.setdefault("eval_loss", loss)  # the first dev split (MNLI: matched) defines eval_loss
            hf.update(split_hf)
        return plain, hf

    def report_metrics(self, metrics: dict, step: int) -> None:
        """The log history's entries to wandb and TensorBoard, named as the HF Trainer's callbacks name them."""
        if self.report is not None:
            self.report.log(metrics, step)
        if self.tensorboard is not None:
            self.tensorboard.add({hf_log_name(k): v for k, v in metrics.items()}, step)

    def close_reports(self) -> None:
        if self.report is not None:
            self.report.finish()
        if self.tensorboard is not None:
            self.tensorboard.close()


def _train(job: LoadedJob, resume_from: Optional[Path]) -> tuple:
    """Train with periodic logging, evaluation and checkpoints; returns (train metrics, the monitor, a function that
    gives ``trainer_state.json`` at a step)."""
    args, model = job.args, job.model
    settings = train_settings(job.data_args, args)
    plan = plan_steps(len(job.data.train), settings, job.world_size)
    eval_steps = args.eval_steps if args.eval_steps is not None else args.logging_steps
    intervals = [StepInterval.resolve(strategy, steps, plan.total_steps) for strategy, steps in (
        (args.logging_strategy, args.logging_steps), (args.eval_strategy, eval_steps),
        (args.save_strategy, args.save_steps))]
    settings_of_run = run_settings(job.model_args, job.data_args, args, job.world_size, job.ner_args)

    def trainer_state(step: int) -> dict:
        return {"global_step": step, "max_steps": plan.total_steps, "num_train_epochs": args.num_train_epochs,
                "epoch": monitor.epoch(step), "train_batch_size": args.per_device_train_batch_size,
                "logging_steps": intervals[0].steps, "eval_steps": intervals[1].steps, "save_steps": intervals[2].steps,
                "run_settings": settings_of_run, "wandb_run_id": job.report.run_id if job.report else None,
                **monitor.state_dict()}

    def save(step: int, training_state: dict) -> None:
        folder = checkpoints.save_checkpoint(job.out, step, model, job.tokenizer, training_state, trainer_state(step),
                                             keep=args.save_total_limit)
        if job.tensorboard is not None:  # a job killed later resumes here: its event file holds every step up to it
            job.tensorboard.flush()
        _log(f"saved {folder.name}")

    monitor = TrainingMonitor(plan, *intervals, evaluate=lambda step: job.evaluate(list(job.data.dev)[:1], step)[1],
                              save=save, report=job.report_metrics, log=_log,
                              logging_first_step=args.logging_first_step)
    resume_state = None
    if resume_from is not None:
        resume_state, saved = checkpoints.load_checkpoint(resume_from, model, settings_of_run)
        monitor.load_state_dict(saved)
        _log(f"resuming from {resume_from} at step {resume_state['step']}/{plan.total_steps} (to train from scratch"
             f" instead, pass --overwrite_output_dir or another --output_dir)")
    if args.progress_file:  # the finetune stage's progress lines
        monitor.progress = ProgressFile(args.progress_file, plan.total_steps, (resume_state or {}).get("step", 0))
    remove_stale_results(job.out)
    _log(f"training on {len(job.data.train)} rows: {plan.total_steps} steps of {plan.rows_per_step} rows (batch"
         f" {args.per_device_train_batch_size} x {job.world_size} device(s) x {args.gradient_accumulation_steps}"
         f" accumulation), {plan.steps_per_epoch} steps per epoch, warmup {plan.warmup_steps} steps, lr"
         f" {args.learning_rate:g} ({args.lr_scheduler_type}), precision {args.precision}, seed {args.seed}")
    trained = model if job.world_size == 1 else torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[job.device] if job.device.type == "cuda" else None)
    summary = train(trained, job.data.train, settings, plan, device=job.device, pad_id=job.pad_id, rank=job.rank,
                    world_size=job.world_size, resume_state=resume_state,
                    after_step=monitor.after_step if job.rank == 0 else None)
    runtime = max(summary["train_runtime_s"], 1e-9)
    metrics = {"train_runtime": round(runtime, 4),
               "train_samples_per_second": round(summary["steps_run"] * plan.rows_per_step / runtime, 3),
               "train_steps_per_second": round(summary["steps_run"] / runtime, 3),
               "train_loss": monitor.train_loss, "epoch": monitor.epoch(plan.total_steps)}
    monitor.record(metrics, plan.total_steps)
    _log(f"trained {plan.total_steps} steps ({summary['steps_run']} in this run) in {runtime:.1f}s: train_loss"
         f" {monitor.train_loss:.4f}")
    return {**metrics, "train_samples": len(job.data.train)}, monitor, trainer_state


def hf_log_name(key: str) -> str:
    """A log-history key as the HF Trainer's wandb and TensorBoard callbacks name it: eval_f1 -> eval/f1,
    loss -> train/loss."""
    head, _, rest = key.partition("_")
    return f"{head}/{rest}" if rest and head in ("eval", "test") else f"train/{key}"


class WandbReport:
    """One wandb run (a resumed job continues its run); ``log`` takes metrics in the log-history keys."""

    def __init__(self, run_name: str, config: dict, output_dir: str, run_id: Optional[str] = None):
        import wandb

        try:  # the project: $WANDB_PROJECT, default huggingface as in transformers
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "huggingface"), name=run_name,
                                  config=config, dir=output_dir, id=run_id, resume="allow" if run_id else None)
        except Exception as e:  # no key, no network, a bad mode: all mean the same to the user
            raise DataError(f"wandb could not start: {first_line(e)}; set WANDB_API_KEY, or WANDB_MODE=offline to log"
                            f" without a network, or drop --report_to wandb")

    @property
    def run_id(self) -> Optional[str]:
        return getattr(self.run, "id", None)

    def log(self, metrics: dict, step: int) -> None:
        self.run.log({hf_log_name(k): v for k, v in metrics.items()}, step=step)

    def finish(self) -> None:
        self.run.finish()


def _start_wandb(job: LoadedJob, resume_from: Optional[Path]) -> None:
    saved = checkpoints.read_trainer_state(resume_from) if resume_from is not None else {}
    config = {**asdict(job.model_args), **asdict(job.data_args), **asdict(job.args),
              **(asdict(job.ner_args) if job.ner_args else {})}
    job.report = WandbReport(job.args.run_name or job.args.output_dir, config, str(job.out), saved.get("wandb_run_id"))


def tensorboard_dir(args: TrainingArguments) -> Path:
    """--logging_dir, else $TENSORBOARD_LOGGING_DIR, else OUTPUT_DIR/runs/DATE_TIME_HOST (transformers' rule: each
    run of a folder its own TensorBoard run)."""
    chosen = args.logging_dir or os.environ.get("TENSORBOARD_LOGGING_DIR")
    if chosen:
        return Path(chosen).expanduser()
    return Path(args.output_dir) / "runs" / f"{datetime.now():%b%d_%H-%M-%S}_{socket.gethostname()}"


def _card_task(job) -> dict:
    """The model-index's task: a GLUE task read from the Hub names ``nyu-mll/glue``, a hub dataset itself; one read
    from a folder (GLUE_DIR, the quickstart's demo tasks) or one's own files names no hub dataset."""
    data_args, task = job.data_args, job.data.task
    name = getattr(task, "name", None) or data_args.task_name or data_args.dataset_name or "own task"
    card = {"type": "token-classification" if job.ner_args is not None else "text-classification", "name": name,
            "dataset_type": name}
    if data_args.task_name and not data_args.data_dir:
        card.update(dataset_type=HUB_DATASET, dataset_on_hub=True, dataset_config=getattr(task, "hub_config", None))
    elif data_args.dataset_name and not is_local_path(data_args.dataset_name):
        card.update(dataset_type=data_args.dataset_name, dataset_on_hub=True,
                    dataset_config=data_args.dataset_config_name)
    return card


def _card_data(data_args) -> str:
    d = data_args
    if d.task_name:
        return f"GLUE layout folder `{d.data_dir}`" if d.data_dir else f"`{HUB_DATASET}` ({d.task_name})"
    if d.dataset_name:
        return f"`{d.dataset_name}`"
    return ", ".join(f"`{path}`" for path in (d.train_file, d.validation_file) if path) or None


def card_facts(job: LoadedJob, train_metrics, evaluation: dict, steps) -> dict:
    """The facts of ``pipeline.model_card.finetuned_card`` for the saved model: what the job recorded, its dev
    metrics under the task table's names (those of ``eval_results.json``)."""
    m, args, train = job.model_args, job.args, train_metrics or {}
    base = f"{m.model_name_or_path} (its architecture only: random initialisation)" if m.random_init \
        else m.model_name_or_path
    device = torch.cuda.get_device_name(job.device) if job.device.type == "cuda" else "cpu"
    return {
        "license": m.license, "task": _card_task(job), "title": f"{job.out.name} ({_card_task(job)['name']})",
        "dev_results": {name: value for name, value in evaluation.items()
                        if not name.startswith("eval_") and name != "epoch"},
        "base_model": base, "base_model_on_hub": not m.random_init and not is_local_path(base),
        "data": _card_data(job.data_args), "learning_rate": f"{args.learning_rate:g}",
        "batch_size": args.per_device_train_batch_size * job.world_size * args.gradient_accumulation_steps,
        "epochs": f"{args.num_train_epochs:g}", "seed": args.seed, "steps": steps,
        "train_seconds": train.get("train_runtime"), "hardware": f"{job.world_size} x {device}",
        "precision": args.precision, "train_loss": train.get("train_loss"), "command": command_line(),
    }


def _finish(job: LoadedJob, train_metrics: Optional[dict], monitor, trainer_state) -> dict:
    """Final evaluation, predictions, the saved model and the result files (rank 0)."""
    evaluation, steps = {}, monitor.plan.total_steps if monitor is not None else None
    if job.data.dev:
        plain, hf = job.evaluate(list(job.data.dev), steps)
        evaluation = {**plain, **hf}
        if monitor is not None:
            evaluation["epoch"] = monitor.epoch(steps)
            monitor.record_evaluation(hf, steps, what="final dev")
        else:
            _log(f"dev: {format_metrics(hf)}")
    for name, (split_task, data) in job.data.test.items():
        logits, _ = job.predict(data)
        rows = zip(data.index, _prediction_strings(split_task, logits, data))
        write_text_atomic(job.out / f"predictions_{name}.tsv",
                          "index\tprediction\n" + "".join(f"{row_id}\t{prediction}\n" for row_id, prediction in rows))
        _log(f"wrote predictions_{name}.tsv ({len(data)} rows)")
    if job.model_args.save_model:  # written whole, card included, then swapped in: STILT never starts from half a model
        card = finetuned_card(card_facts(job, train_metrics, evaluation, steps))
        write_model_folder(job.model, job.tokenizer, job.out / MODEL_SUBDIR,
                           write_more=lambda folder: write_card(folder, card))
        _log(f"saved the finetuned model to {job.out / MODEL_SUBDIR}")
    if monitor is not None:
        write_json_atomic(job.out / checkpoints.TRAINER_STATE, trainer_state(steps))
    write_results(job.out, train_metrics, evaluation)
    return evaluation


def run(model_args: ModelArguments, data_args: DataTrainingArguments, args: TrainingArguments,
        ner_args=None) -> dict:
    """Train, evaluate and predict as the flags ask; returns the dev results (empty without --do_eval).
    ``ner_args`` (run_ner.py's) makes it a token-classification job."""
    hub = hub_options(model_args)
    fit_to_positions(model_args, data_args, **hub)
    out, resume_from = prepare_output_dir(args)
    device, rank, world_size = _setup_device(args)
    if resume_from is not None:  # refuse a checkpoint of other settings before loading anything
        checkpoints.check_settings(resume_from, run_settings(model_args, data_args, args, world_size, ner_args))
    set_seed(args.seed)
    source = data_args.task_name or data_args.dataset_name or data_args.train_file or data_args.validation_file
    _log(f"{source}: model {model_args.model_name_or_path}{' (random init)' if model_args.random_init else ''},"
         f" device {device}, world size {world_size}")
    tokenizer_options = {**hub, **({} if model_args.use_fast_tokenizer else {"use_fast": False})}
    tokenizer = load_tokenizer(model_args.tokenizer_name or model_args.model_name_or_path, **tokenizer_options)
    if ner_args is not None:
        if needs_prefix_space(tokenizer):
            tokenizer = load_tokenizer(model_args.tokenizer_name or model_args.model_name_or_path,
                                       add_prefix_space=True, **tokenizer_options)
        data = load_token_task_data(model_args, data_args, ner_args, args, tokenizer, log=_log)
    else:
        data = load_task_data(model_args, data_args, args, tokenizer)
    model = load_model(model_args.model_name_or_path, data.task, model_args.random_init, model_args.config_name or "",
                       **hub).to(device)
    _log(f"lean model: {', '.join(make_lean(model)) or 'no change applies'}")
    if device.type == "cpu":
        keep_freed_memory()
    job = LoadedJob(model_args, data_args, args, out, device, rank, world_size, tokenizer, model, data,
                    ner_args=ner_args)
    if "wandb" in args.report_to and rank == 0:
        _start_wandb(job, resume_from)
    if "tensorboard" in args.report_to and rank == 0:
        job.tensorboard = ScalarWriter(tensorboard_dir(args), from_scratch=False)
    train_metrics, monitor, trainer_state = _train(job, resume_from) if args.do_train else (None, None, None)
    if rank != 0:
        torch.distributed.destroy_process_group()
        return {}
    results = _finish(job, train_metrics, monitor, trainer_state)
    if args.push_to_hub:  # after every result file is written: a failed upload leaves a complete job
        private = SETTINGS_BY_KEY["PUBLISH.PRIVATE"].default if args.hub_private_repo is None else args.hub_private_repo
        _log(publish_folder(out / MODEL_SUBDIR, hub_repo(args), private, f"ExtremeBERT: finetuned {out.name}"))
    job.close_reports()
    if world_size > 1:
        torch.distributed.destroy_process_group()
    return results
