"""Finetune one model on one GLUE task with one set of hyperparameters: the unit of work of the finetune stage.

Flags follow the Hugging Face ``run_glue.py`` example, e.g.::

    python finetuning/run_glue.py --model_name_or_path MODEL --task_name MRPC --max_seq_length 128 \\
        --output_dir OUT --overwrite_output_dir --do_train --do_eval --do_predict \\
        --per_device_train_batch_size 32 --learning_rate 5e-5 --weight_decay 0.01 --num_train_epochs 5 \\
        --lr_scheduler_type polynomial --warmup_ratio 0.06 --seed 42 [--data_dir GLUE_DIR]

Writes ``eval_results.json`` (dev metrics + ``eval_loss``), ``predictions_<SUBMISSION>.tsv`` (MNLI jobs also
``predictions_AX.tsv``) and, with ``--save_model``, the finetuned model under ``OUTPUT_DIR/model``. Under
``torchrun`` (several GPUs) it trains with DistributedDataParallel and rank 0 writes the outputs.
"""
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetuning.glue_data import HUB_DATASET  # noqa: E402
from finetuning.glue_tasks import GLUE_TASKS, get_task  # noqa: E402
from pipeline.errors import DataError, ExtremeBertError  # noqa: E402
from pipeline.manifest import write_json_atomic, write_text_atomic  # noqa: E402

MODEL_SUBDIR = "model"  # where --save_model writes the finetuned model (STILT starts from it)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "model folder (a pretrain final_model, any HF BERT) or hub name"})
    random_init: bool = field(default=False, metadata={
        "help": "start from random weights of the same architecture (the no-pretraining baseline)"})
    save_model: bool = field(default=False, metadata={"help": "write the finetuned model to OUTPUT_DIR/model"})


@dataclass
class DataArguments:
    task_name: str = field(metadata={"help": "GLUE task, any usual spelling: cola, SST-2, sts-b, mnli, ..."})
    data_dir: str = field(default="", metadata={
        "help": "GLUE folder in the official layout; empty = nyu-mll/glue from the Hugging Face Hub"})
    max_seq_length: int = field(default=128, metadata={"help": "longest tokenized input (longer pairs are cut)"})
    max_train_samples: int = field(default=0, metadata={"help": "use only the first N training rows (0 = all)"})
    max_eval_samples: int = field(default=0, metadata={"help": "use only the first N rows of each dev split (0 = all)"})
    tokenized_cache_dir: str = field(default="", metadata={
        "help": "folder that keeps tokenized splits for the next job of the same task (empty = no cache)"})
    hub_dataset: str = field(default=HUB_DATASET, metadata={
        "help": "dataset name (or local folder in its layout) used when --data_dir is empty"})


@dataclass
class JobArguments:
    output_dir: str = field(metadata={"help": "folder for eval_results.json and the test predictions"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "write into an existing, non-empty folder"})
    do_train: bool = field(default=False, metadata={"help": "finetune on the train split"})
    do_eval: bool = field(default=False, metadata={"help": "evaluate on the dev split(s)"})
    do_predict: bool = field(default=False, metadata={"help": "predict the test split(s) (and AX for MNLI)"})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "training batch size per device"})
    per_device_eval_batch_size: int = field(default=128, metadata={"help": "evaluation batch size per device"})
    learning_rate: float = field(default=5e-5, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay (not on biases and LayerNorm)"})
    num_train_epochs: float = field(default=3.0, metadata={"help": "passes over the training data"})
    lr_scheduler_type: str = field(default="linear", metadata={
        "help": "polynomial | linear | cosine | constant (transformers get_scheduler names)"})
    warmup_ratio: float = field(default=0.0, metadata={"help": "fraction of the steps spent in linear warmup"})
    seed: int = field(default=42, metadata={"help": "seed for the classifier initialisation and data order"})
    group_by_length: bool = field(default=False, metadata={"help": "batch rows of similar length (less padding)"})
    precision: str = field(default="auto", metadata={
        "help": "auto (bf16, else fp16 on GPU; fp32 on CPU) | bf16 | fp16 | fp32"})
    use_cpu: bool = field(default=False, metadata={"help": "run on the CPU even when a GPU is visible"})


def parse_args(argv=None):
    from transformers import HfArgumentParser

    parser = HfArgumentParser((ModelArguments, DataArguments, JobArguments))
    return parser.parse_args_into_dataclasses(args=argv)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def refuse_old_format(model_path: str) -> None:
    """A model folder of the old pre-LN format (model type ``extremebert``) stops here with the command that
    converts it, rather than with transformers' "does not recognize this architecture"."""
    from pretraining.convert_checkpoint import old_format_error

    message = old_format_error(model_path)
    if message:
        raise DataError(message)


def load_tokenizer(model_path: str):
    from transformers import AutoTokenizer

    refuse_old_format(model_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot load a tokenizer from {model_path}: {str(e).splitlines()[0]}")
    # Offline, a hub name can yield a tokenizer holding only the special tokens instead of raising.
    if len(tokenizer) <= len(tokenizer.all_special_tokens):
        raise DataError(f"the tokenizer at {model_path} has only {len(tokenizer)} tokens (no vocabulary); give a model"
                        f" folder that holds its tokenizer files")
    return tokenizer


def load_model(model_path: str, task, random_init: bool = False):
    """``AutoModelForSequenceClassification`` for ``task``; a head of another size (STILT) starts fresh."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    refuse_old_format(model_path)
    label_kwargs = {"num_labels": 1, "problem_type": "regression"} if task.is_regression else {
        "num_labels": len(task.labels), "problem_type": "single_label_classification",
        "id2label": dict(enumerate(task.labels)), "label2id": {label: i for i, label in enumerate(task.labels)}}
    try:
        config = AutoConfig.from_pretrained(model_path, **label_kwargs)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot load a model config from {model_path}: {str(e).splitlines()[0]}")
    if random_init:
        return AutoModelForSequenceClassification.from_config(config)
    return AutoModelForSequenceClassification.from_pretrained(model_path, config=config, ignore_mismatched_sizes=True)


def _setup_device(args: JobArguments):
    """(device, rank, world_size); under torchrun each rank drives its LOCAL_RANK GPU."""
    import torch

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    use_cuda = torch.cuda.is_available() and not args.use_cpu
    if world_size > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if use_cuda:
            torch.cuda.set_device(local_rank)
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
        return torch.device("cuda", local_rank) if use_cuda else torch.device("cpu"), rank, world_size
    return torch.device("cuda") if use_cuda else torch.device("cpu"), 0, 1


def _prediction_strings(task, logits) -> list:
    if task.is_regression:
        return [f"{min(5.0, max(0.0, float(value))):.3f}" for value in logits[:, 0]]  # the server's range
    return [task.labels[i] for i in logits.argmax(axis=1)]


def write_predictions(path: Path, index: list, predictions: list) -> None:
    rows = "".join(f"{row_id}\t{prediction}\n" for row_id, prediction in zip(index, predictions))
    write_text_atomic(path, "index\tprediction\n" + rows)


def _check_output_dir(args: JobArguments) -> Path:
    out = Path(args.output_dir)
    if out.is_dir() and any(out.iterdir()) and not args.overwrite_output_dir and args.do_train:
        raise DataError(f"output folder {out} already exists and is not empty; pass --overwrite_output_dir")
    out.mkdir(parents=True, exist_ok=True)
    return out


def run(model_args: ModelArguments, data_args: DataArguments, args: JobArguments) -> dict:
    """Train, evaluate and predict as the flags ask; returns the dev metrics (empty without --do_eval)."""
    from finetuning.features import load_encoded, tokenizer_fingerprint

    task = get_task(data_args.task_name)
    if task.train is None:
        raise DataError(f"{task.name} has no training data: it is predicted by the MNLI jobs")
    out = _check_output_dir(args)
    import torch
    from transformers import set_seed

    from finetuning.train_loop import predict, train

    device, rank, world_size = _setup_device(args)
    set_seed(args.seed)
    _log(f"{task.name}: model {model_args.model_name_or_path}{' (random init)' if model_args.random_init else ''},"
         f" device {device}, world size {world_size}")
    tokenizer = load_tokenizer(model_args.model_name_or_path)
    tokenizer_key = tokenizer_fingerprint(tokenizer)

    def encoded(kind, name, rows=0, for_task=task):
        return load_encoded(for_task, kind, name, tokenizer, data_args.max_seq_length, data_args.data_dir, rows,
                            data_args.tokenized_cache_dir, data_args.hub_dataset, tokenizer_key)

    # Read every split first so that a data problem stops the job before any training.
    train_data = encoded("train", "train", data_args.max_train_samples) if args.do_train else None
    dev_data = {name: encoded("dev", name, data_args.max_eval_samples) for name in task.dev} if args.do_eval else {}
    test_data = {}
    if args.do_predict:
        test_data = {name: (task, encoded("test", name)) for name in task.test}
        if task.name == "MNLI":  # the diagnostic set is scored by the MNLI model
            ax = GLUE_TASKS["AX"]
            test_data["AX"] = (ax, encoded("test", "AX", for_task=ax))
    model = load_model(model_args.model_name_or_path, task, model_args.random_init).to(device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    if args.do_train:
        _log(f"training on {len(train_data)} rows: lr {args.learning_rate}, batch {args.per_device_train_batch_size}"
             f" x {world_size}, epochs {args.num_train_epochs}, seed {args.seed}")
        trained = model
        if world_size > 1:
            trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda"
                                                                else None)
        summary = train(trained, train_data, batch_size=args.per_device_train_batch_size,
                        learning_rate=args.learning_rate, weight_decay=args.weight_decay,
                        epochs=args.num_train_epochs, lr_scheduler_type=args.lr_scheduler_type,
                        warmup_ratio=args.warmup_ratio, seed=args.seed, group_by_length=args.group_by_length,
                        device=device, pad_id=pad_id, precision=args.precision, rank=rank, world_size=world_size,
                        log=_log)
        _log(f"trained {summary['train_steps']} steps in {summary['train_runtime_s']:.1f}s")
    if rank != 0:
        torch.distributed.destroy_process_group()
        return {}

    results = {}
    for name, data in dev_data.items():
        logits, loss = predict(model, data, batch_size=args.per_device_eval_batch_size, device=device, pad_id=pad_id,
                               precision=args.precision)
        predictions = logits[:, 0] if task.is_regression else logits.argmax(axis=1)
        from finetuning.metrics import task_dev_metrics

        results.update(task_dev_metrics(task, name, predictions, data.labels))
        if "eval_loss" not in results:  # the first dev split (MNLI: matched) defines eval_loss
            results["eval_loss"] = loss
    if dev_data:
        write_json_atomic(out / "eval_results.json", results)
        _log(f"dev: {', '.join(f'{k} {v:.4f}' for k, v in results.items())}")
    for name, (split_task, data) in test_data.items():
        logits, _ = predict(model, data, batch_size=args.per_device_eval_batch_size, device=device, pad_id=pad_id,
                            precision=args.precision)
        write_predictions(out / f"predictions_{name}.tsv", data.index, _prediction_strings(split_task, logits))
        _log(f"wrote predictions_{name}.tsv ({len(data)} rows)")
    if model_args.save_model:
        save_model(model, tokenizer, out / MODEL_SUBDIR)
    if world_size > 1:
        torch.distributed.destroy_process_group()
    return results


def save_model(model, tokenizer, target: Path) -> None:
    """Save via a temporary folder and a rename, so a half-written model is never taken for a finished one."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    _log(f"saved the finetuned model to {target}")


def main(argv=None) -> int:
    model_args, data_args, job_args = parse_args(argv)
    try:
        run(model_args, data_args, job_args)
    except ExtremeBertError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
