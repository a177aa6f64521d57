"""The command lines of ``run_glue.py`` and ``run_ner.py``: the flags of the Hugging Face examples, parsed by
``HfArgumentParser`` into their dataclasses. ``TrainingArguments`` holds the fields our own loop implements, in the
transformers 5 spelling and in the transformers 4 one of the ExtremeBERT paper's commands (``--evaluation_strategy``,
``--overwrite_output_dir``, ``--no_cuda``, ...). Any other flag of the installed transformers' ``TrainingArguments``
is accepted and noted as having no effect; any other flag, or a bad combination, is a one-line error (exit 2).
"""
import argparse
import importlib.util
import json
import math
import sys
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Literal, Optional

from finetuning.glue_data import HUB_DATASET
from finetuning.glue_tasks import canonical_task_name
from finetuning.own_data import FILE_FORMATS, own_metrics
from pipeline.defaults import PRECISIONS, SETTINGS, SETTINGS_BY_KEY
from pipeline.errors import ConfigError
from pipeline.hardware import fp16_problems
from pipeline.hub_publish import looks_like_token, publish_problems
from pipeline.log_setup import add_level_flags, setup_script_logging
from pipeline.setting import FINETUNE_SCRIPT, Interval

STRATEGIES = ("no", "steps", "epoch")
SAMPLING = ("random", "sequential", "group_by_length")
OPTIMIZERS = ("adamw_torch_fused", "adamw_torch")  # both are torch's AdamW here (fused where the device has it)
INTEGRATIONS = ("tensorboard", "wandb")  # what --report_to can reach here
NER_TASKS = ("ner", "pos", "chunk")  # run_ner.py's --task_name


def _flag(default, text: str):
    """A flag's dataclass field: its default and its --help text."""
    return field(default=default, metadata={"help": text})


# The flags the finetune stage passes, each a FINETUNE setting of the table: their meaning and range come from there
# (their defaults stay the Hugging Face example's, so that its command lines mean what they meant).
TABLE_FLAGS = {setting.flags[0][2:]: setting for setting in SETTINGS if FINETUNE_SCRIPT in setting.scripts}


# The ranges of the other flags that reach the training loop, as torch and the search's grids take them
# (FINETUNE.SEARCH.*.LEARNING_RATES is (0, inf)); with the table's, no value outside its range reaches torch.
FLAG_RANGES = {"learning_rate": "(0, inf)", "num_train_epochs": "[0, inf)", "per_device_train_batch_size": "[1, inf)",
               "adam_beta1": "[0, 1)", "adam_beta2": "[0, 1)", "adam_epsilon": "[0, inf)",
               "eval_steps": "(0, inf)", "logging_steps": "(0, inf)", "save_steps": "(0, inf)",
               "save_total_limit": "[1, inf)", "max_predict_samples": "[0, inf)"}


def _table(name: str, here: str = "") -> str:
    setting = TABLE_FLAGS[name]
    return f"{setting.help}{here} [{setting.key}]"


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": (
        "model folder (a pretrain final_model, any HF encoder) or hub name")})
    config_name: Optional[str] = _flag(None, "config folder or name if not the model's")
    tokenizer_name: Optional[str] = _flag(None, "tokenizer folder or name if not the model's")
    cache_dir: Optional[str] = _flag(None, "where hub downloads (models, datasets) are kept")
    use_fast_tokenizer: bool = _flag(True, "use the Rust (fast) tokenizer")
    model_revision: str = _flag("main", "hub branch, tag or commit of the model")
    token: Optional[str] = _flag(None, "hub token for private models (default: the login's)")
    license: str = _flag(SETTINGS_BY_KEY["PUBLISH.LICENSE"].default, (
        "ExtremeBERT's: the license the saved model's card declares [PUBLISH.LICENSE]"))
    use_auth_token: bool = _flag(False, "transformers 4 spelling of --token: use the login's")
    trust_remote_code: bool = _flag(False, "allow a hub model's own modelling code to run")
    ignore_mismatched_sizes: bool = _flag(False, (
        "always on here: a classifier head of another size (STILT, another task) starts fresh"))
    random_init: bool = _flag(False, "start from random weights of the same architecture (the no-pretraining baseline)")
    save_model: bool = _flag(False, "write the finetuned model to OUTPUT_DIR/model")


@dataclass
class DataTrainingArguments:
    task_name: Optional[str] = _flag(None, (
        "GLUE task, any usual spelling (cola, SST-2, sts-b, mnli, ...); without it, --dataset_name or --train_file"))
    data_dir: str = _flag("", _table("data_dir"))
    dataset_name: Optional[str] = _flag(None, (
        "a dataset of one's own on the hub (or a local dataset folder) with train/validation/test splits"))
    dataset_config_name: Optional[str] = _flag(None, "configuration of --dataset_name")
    train_file: Optional[str] = _flag(None, (
        "training data of one's own task (.csv, .tsv, .json/.jsonl lines or .parquet): a label column (floats ="
        " regression) and one or two text columns (--text_column_names, else `sentence1`/`sentence2`, else the first"
        " one or two text columns)"))
    validation_file: Optional[str] = _flag(None, "dev data of one's own task, same columns")
    test_file: Optional[str] = _flag(None, (
        "test data of one's own task (a label column is ignored); --do_predict writes predictions_test.tsv"))
    text_column_names: Optional[str] = _flag(None, (
        "one's own task: the text column, or two separated by a comma for a pair task (as HF run_classification.py)"))
    label_column_name: Optional[str] = _flag(None, (
        "one's own task: the label column (default: label; run_ner.py's JSON lines: tags, else <task_name>_tags)"))
    id_column_name: Optional[str] = _flag(None, (
        "one's own task: the row id written with the predictions (default: idx, index or id when there is one)"))
    task_type: Optional[Literal["classification", "regression"]] = _flag(None, (
        "one's own task: classification | regression (default: regression when the training labels are floats)"))
    metric_name: Optional[str] = _flag(None, (
        "one's own task: the dev metric to report first: accuracy | macro_f1 | mcc | f1 (with --positive_label);"
        " pearson | spearman for regression (default: accuracy, pearson)"))
    positive_label: Optional[str] = _flag(None, "one's own binary task: the positive class, whose F1 is reported as f1")
    max_seq_length: int = _flag(128, _table("max_seq_length", " (longer pairs are cut)"))
    pad_to_max_length: bool = _flag(False, (
        "pad every batch to --max_seq_length (default here: pad each batch to its own longest row, which gives the"
        " same results faster; the HF example's default is to pad)"))
    overwrite_cache: bool = _flag(False, "tokenize again instead of reading the cache")
    max_train_samples: Optional[int] = _flag(None, _table("max_train_samples"))
    max_eval_samples: Optional[int] = _flag(None, _table("max_eval_samples"))
    max_predict_samples: Optional[int] = _flag(None, "predict only the first N test rows")
    tokenized_cache_dir: str = _flag("", (
        "folder that keeps tokenized GLUE splits for the next job of the same task (empty = no cache)"))
    hub_dataset: str = _flag(HUB_DATASET, (
        "GLUE dataset name (or local folder in its layout) used when --data_dir is empty"))
    malformed_rows: Literal[TABLE_FLAGS["malformed_rows"].choices] = _flag("error", _table("malformed_rows"))


@dataclass
class TrainingArguments:
    output_dir: str = field(metadata={"help": "folder for the results, predictions and checkpoints"})
    overwrite_output_dir: bool = _flag(False, (
        "write into a non-empty folder and train from scratch, removing its checkpoints (without it, a folder with"
        " checkpoints resumes from the newest)"))
    do_train: bool = _flag(False, "finetune on the train split")
    do_eval: bool = _flag(False, "evaluate on the dev split(s) after training")
    do_predict: bool = _flag(False, "predict the test split(s) (and AX for MNLI)")
    eval_strategy: Literal[STRATEGIES] = _flag("no", (
        "evaluate on the dev set during training: no | steps (every --eval_steps) | epoch"))
    evaluation_strategy: Optional[Literal[STRATEGIES]] = _flag(None, "transformers 4 spelling of --eval_strategy")
    eval_steps: Optional[float] = _flag(None, (
        "optimizer steps between evaluations (a float < 1 = that fraction of all steps); default --logging_steps"))
    per_device_train_batch_size: int = _flag(8, "training batch size per device")
    per_device_eval_batch_size: int = _flag(128, _table("per_device_eval_batch_size", "; HF's default is 8"))
    gradient_accumulation_steps: int = _flag(1, _table("gradient_accumulation_steps"))
    learning_rate: float = _flag(5e-5, "peak AdamW learning rate")
    weight_decay: float = _flag(0.0, _table("weight_decay", " (not on biases and LayerNorm)"))
    adam_beta1: float = _flag(0.9, "AdamW beta1")
    adam_beta2: float = _flag(0.999, "AdamW beta2")
    adam_epsilon: float = _flag(1e-8, "AdamW epsilon")
    optim: str = _flag("adamw_torch_fused", f"optimizer: {' | '.join(OPTIMIZERS)} (AdamW)")
    max_grad_norm: float = _flag(1.0, _table("max_grad_norm"))
    num_train_epochs: float = _flag(3.0, "passes over the training data (may be fractional)")
    max_steps: int = _flag(-1, "optimizer steps to train; > 0 overrides --num_train_epochs")
    lr_scheduler_type: str = _flag("linear", _table("lr_scheduler_type", " | constant_with_warmup | ..."))
    lr_scheduler_kwargs: Optional[str] = _flag(None, (
        "JSON object of extra scheduler arguments, e.g. '{\"power\": 2.0}' for polynomial"))
    warmup_steps: float = _flag(0, _table("warmup_steps", " (a float < 1: that fraction of all steps)"))
    warmup_ratio: float = _flag(0.0, _table("warmup_ratio"))
    logging_strategy: Literal[STRATEGIES] = _flag("steps", (
        "print and record the training loss: no | steps (every --logging_steps) | epoch"))
    logging_steps: float = _flag(500, "optimizer steps between loss lines (a float < 1 = that fraction of all steps)")
    logging_first_step: bool = _flag(False, "also log after the first step")
    logging_dir: Optional[str] = _flag(None, (
        "folder of the TensorBoard event files of --report_to tensorboard (default: $TENSORBOARD_LOGGING_DIR, else"
        " OUTPUT_DIR/runs/DATE_TIME_HOST as in transformers)"))
    save_strategy: Literal[STRATEGIES] = _flag("steps", (
        "write resumable checkpoints OUTPUT_DIR/checkpoint-STEP: no | steps (every --save_steps) | epoch"))
    save_steps: float = _flag(500, "optimizer steps between checkpoints (a float < 1 = that fraction of all steps)")
    save_total_limit: Optional[int] = _flag(None, "keep only the newest N checkpoints")
    resume_from_checkpoint: Optional[str] = _flag(None, (
        "checkpoint folder to resume from (default: the newest in OUTPUT_DIR unless --overwrite_output_dir)"))
    seed: int = _flag(42, "seed for the classifier initialisation, dropout and data order")
    data_seed: Optional[int] = _flag(None, "seed of the data order alone (default --seed)")
    fp16: bool = _flag(False, "fp16 autocast with loss scaling (needs a CUDA GPU)")
    bf16: bool = _flag(False, "bf16 autocast (GPU, or a CPU)")
    fp16_opt_level: Optional[str] = _flag(None, "accepted; no effect here (no apex)")
    precision: Literal[PRECISIONS] = _flag("auto", _table("precision", "; --fp16/--bf16 set it"))
    group_by_length: bool = _flag(False, _table(
        "group_by_length", "; transformers 4 spelling of --train_sampling_strategy group_by_length"))
    train_sampling_strategy: Literal[SAMPLING] = _flag("random", (
        "random | sequential | group_by_length (batches of rows of similar length: less padding)"))
    report_to: list[str] = field(default_factory=lambda: ["none"], metadata={"help": (
        "none | tensorboard | wandb | all (wandb's project is $WANDB_PROJECT, default huggingface; WANDB_MODE=offline"
        " works offline)")})
    run_name: Optional[str] = _flag(None, "the run's name for wandb (default OUTPUT_DIR)")
    progress_file: str = _flag("", (
        "ExtremeBERT's: rewrite this JSON file with the step, the total and steps/s every few seconds (the finetune"
        " stage reads it for its progress lines)"))
    push_to_hub: bool = _flag(False, (
        "upload the finetuned model (saved as with --save_model, with its card) to the Hub at the end; the token"
        " comes from HF_TOKEN or `hf auth login`; rerunning uploads only what the Hub lacks"))
    hub_model_id: Optional[str] = _flag(None, (
        "the Hub repository of --push_to_hub, \"user/name\" or \"name\" (default: the name of --output_dir)"))
    hub_private_repo: Optional[bool] = _flag(None, (
        "create the repository private (default: PUBLISH.PRIVATE's default, private)"))
    use_cpu: bool = _flag(False, "run on the CPU even when a GPU is visible")
    no_cuda: bool = _flag(False, "transformers 4 spelling of --use_cpu")


def _one_line_parser(dataclass_types, prog: str = "run_glue.py", **kwargs):
    """An ``HfArgumentParser`` whose errors are one line and exit 2, as command-line mistakes should be."""
    from transformers import HfArgumentParser

    class OneLineErrors(HfArgumentParser):
        def error(self, message):
            print(f"error: {message} (see {self.prog} --help)", file=sys.stderr, flush=True)
            sys.exit(2)

    return OneLineErrors(dataclass_types, allow_abbrev=False, prog=prog, **kwargs)


def _trainer_only_flags(remaining: list) -> list:
    """Notes for flags of the installed transformers' ``TrainingArguments`` that this script has no use for."""
    from transformers import TrainingArguments as HfTrainingArguments

    ours = {f.name for f in fields(TrainingArguments)}
    parser = _one_line_parser(HfTrainingArguments)
    namespace, unknown = parser.parse_known_args(remaining)
    if unknown:
        parser.error(f"unrecognized argument{'s' if len(unknown) > 1 else ''}: {' '.join(unknown)}")
    defaults = vars(parser.parse_known_args([])[0])
    return [f"note: --{name} has no effect here (a Hugging Face Trainer setting; run_glue.py trains with its own"
            f" loop)" for name, value in sorted(vars(namespace).items())
            if name not in ours and value != defaults.get(name)]


def parse_args(argv=None, description: str = "", epilog: str = "", extra_types: tuple = (),
               prog: str = "run_glue.py"):
    """(model, data, training arguments, one instance of each of ``extra_types``, notes); exits 2 with one line
    on an unknown flag or a bad value."""
    parser = _one_line_parser((ModelArguments, DataTrainingArguments, TrainingArguments, *extra_types), prog=prog,
                              description=description, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_level_flags(parser)
    *parsed, levels, remaining = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    setup_script_logging(levels)  # --quiet/--verbose: the one namespace the dataclasses leave
    notes = _trainer_only_flags(remaining) if remaining else []
    return (*parsed, notes)


def _old_spellings(model_args: ModelArguments, args: TrainingArguments, problems: list) -> None:
    """Each transformers 4 spelling settled into its transformers 5 one."""
    if args.evaluation_strategy is not None:
        if args.eval_strategy not in ("no", args.evaluation_strategy):
            problems.append(f"--evaluation_strategy {args.evaluation_strategy} and --eval_strategy"
                            f" {args.eval_strategy} disagree: give one of them")
        args.eval_strategy = args.evaluation_strategy
    if args.group_by_length:
        if args.train_sampling_strategy not in ("random", "group_by_length"):
            problems.append(f"--group_by_length and --train_sampling_strategy {args.train_sampling_strategy} disagree")
        args.train_sampling_strategy = "group_by_length"
    args.use_cpu = args.use_cpu or args.no_cuda
    if model_args.use_auth_token and not model_args.token:
        model_args.token = True


def _steps(args: TrainingArguments, problems: list) -> None:
    if args.eval_strategy != "no":
        args.do_eval = True  # as in transformers: evaluating during training implies evaluating
    for name in ("eval_steps", "logging_steps", "save_steps"):  # their range is checked with the others'
        value = getattr(args, name)
        if value is not None and math.isfinite(value) and value > 1 and value != int(value):
            problems.append(f"--{name} {value:g} must be a whole number of steps >= 1, or a fraction in (0, 1)")


def _precision(args: TrainingArguments, gpu: bool, problems: list) -> None:
    if args.fp16 and args.bf16:
        problems.append("--fp16 and --bf16 both given: choose one")
        return
    wanted = "fp16" if args.fp16 else "bf16" if args.bf16 else None
    if wanted and args.precision not in ("auto", wanted):
        problems.append(f"--{wanted} and --precision {args.precision} disagree: give one of them")
        return
    args.precision = wanted or args.precision
    problems += fp16_problems(args.precision, gpu, instead="--bf16, or drop --fp16 (no GPU visible, or --use_cpu)")


def _schedule(args: TrainingArguments, problems: list, notes: list) -> None:
    from transformers import SchedulerType

    try:
        SchedulerType(args.lr_scheduler_type)
    except ValueError:
        problems.append(f"--lr_scheduler_type {args.lr_scheduler_type!r} is not a transformers scheduler: use one of"
                        f" {', '.join(s.value for s in SchedulerType if s.value != 'reduce_lr_on_plateau')}")
    if args.lr_scheduler_type == "reduce_lr_on_plateau":
        problems.append("--lr_scheduler_type reduce_lr_on_plateau is not supported here (it steps on the eval loss):"
                        " use linear, polynomial, cosine or constant")
    if args.lr_scheduler_kwargs:
        try:
            kwargs = json.loads(args.lr_scheduler_kwargs)
        except ValueError:
            kwargs = None
        if not isinstance(kwargs, dict):
            problems.append(f"--lr_scheduler_kwargs must be a JSON object, e.g. '{{\"power\": 2.0}}'; got"
                            f" {args.lr_scheduler_kwargs!r}")
    if math.isfinite(args.warmup_steps) and args.warmup_steps > 1 and args.warmup_steps != int(args.warmup_steps):
        problems.append(f"--warmup_steps {args.warmup_steps:g} must be a whole number of steps or a fraction in [0, 1)")
    elif args.warmup_steps and args.warmup_ratio:
        notes.append(f"note: --warmup_ratio {args.warmup_ratio:g} has no effect: --warmup_steps {args.warmup_steps:g}"
                     f" takes precedence")


def _ranges(flags: list, problems: list) -> None:
    """Each flag of the table within its setting's range, each of ``FLAG_RANGES`` within its own (neither holds
    inf or NaN)."""
    ranges = {**{name: (setting.interval, f" ({setting.key})") for name, setting in TABLE_FLAGS.items()
                 if setting.interval is not None},
              **{name: (Interval.parse(text), "") for name, text in FLAG_RANGES.items()}}
    for name, (interval, key) in ranges.items():
        value = next(getattr(group, name) for group in flags if hasattr(group, name))
        if value is not None and value not in interval:
            finite = "" if math.isfinite(value) else ": give a finite number"
            problems.append(f"--{name} {value:g} is out of range {interval}{key}{finite}")


def _report_to(args: TrainingArguments, notes: list) -> None:
    wanted = [name.lower() for name in args.report_to]
    if "all" in wanted:
        wanted = [name for name in INTEGRATIONS if importlib.util.find_spec(name) is not None]
    notes += [f"note: --report_to {name} has no effect here (only {', '.join(INTEGRATIONS)} is supported)"
              for name in wanted if name not in (*INTEGRATIONS, "none")]
    args.report_to = sorted(set(wanted) & set(INTEGRATIONS))
    if args.logging_dir is not None and "tensorboard" not in args.report_to:
        notes.append("note: --logging_dir has no effect without --report_to tensorboard")


def _data_source(data_args: DataTrainingArguments, args: TrainingArguments, problems: list, notes: list) -> None:
    files = {name: getattr(data_args, name) for name in ("train_file", "validation_file", "test_file")}
    if data_args.task_name:
        try:
            canonical_task_name(data_args.task_name)
        except ConfigError as e:
            problems.append(str(e))
        notes += [f"note: --{name} has no effect with --task_name (GLUE data is read)" for name, value in files.items()
                  if value]
        return
    if data_args.dataset_name:
        return
    needed = {"train_file": args.do_train, "validation_file": args.do_eval, "test_file": args.do_predict}
    missing = [f"--{name}" for name, need in needed.items() if need and not files[name]]
    if missing:
        problems.append(f"no data: give --task_name (GLUE), --dataset_name, or the files your flags need"
                        f" ({', '.join(missing)})")
    for name, value in files.items():
        if value and not value.lower().endswith(tuple(FILE_FORMATS)):
            problems.append(f"--{name} {value}: expected a {', '.join(FILE_FORMATS)} file")
    if data_args.metric_name:
        try:
            own_metrics(data_args)
        except ConfigError as e:
            problems.append(str(e))


def hub_repo(args: TrainingArguments) -> str:
    """The repository --push_to_hub uploads to: --hub_model_id, else the output folder's name (as in transformers)."""
    return args.hub_model_id or Path(args.output_dir).name


def _hub(model_args: ModelArguments, args: TrainingArguments, problems: list, notes: list) -> None:
    """--push_to_hub: the model is saved (its card with it), and the repository, the token and the network are
    checked now, before any work."""
    given = {"--hub_model_id": args.hub_model_id, "--license": model_args.license}
    tokens = [flag for flag, value in given.items() if looks_like_token(value)]
    if tokens:
        problems += [f"{flag} holds what looks like a Hugging Face token: give it through HF_TOKEN or `hf auth"
                     f" login`" for flag in tokens]
        return
    if not args.push_to_hub:
        if args.hub_model_id or args.hub_private_repo is not None:
            notes.append("note: --hub_model_id and --hub_private_repo have no effect without --push_to_hub")
        return
    model_args.save_model = True
    problems += publish_problems(hub_repo(args), "--hub_model_id")


def finalize(model_args: ModelArguments, data_args: DataTrainingArguments, args: TrainingArguments,
             gpu_available: bool, data_source=None) -> list:
    """Check the flags together and settle each old spelling into its new one; returns notes to print.
    ``data_source(data_args, args, problems, notes)`` checks the data flags (default: run_glue.py's check).

    Raises ``ConfigError`` with every problem, before anything is loaded."""
    problems, notes = [], []
    _old_spellings(model_args, args, problems)
    _steps(args, problems)
    _precision(args, gpu_available and not args.use_cpu, problems)
    _schedule(args, problems, notes)
    if args.do_train and args.max_steps <= 0 and args.num_train_epochs <= 0:
        problems.append("--num_train_epochs must be > 0 (or give --max_steps)")
    if args.optim not in OPTIMIZERS:
        problems.append(f"--optim {args.optim} is not available here: the loop uses torch's AdamW"
                        f" ({' | '.join(OPTIMIZERS)})")
    _ranges([model_args, data_args, args], problems)
    _report_to(args, notes)
    (data_source or _data_source)(data_args, args, problems, notes)
    if args.fp16_opt_level is not None:  # a transformers 4 flag that transformers 5 dropped
        notes.append("note: --fp16_opt_level has no effect here (there is no apex here)")
    if args.resume_from_checkpoint and not args.do_train:
        notes.append("note: --resume_from_checkpoint has no effect without --do_train")
    if not (args.do_train or args.do_eval or args.do_predict):
        problems.append("nothing to do: give --do_train, --do_eval and/or --do_predict")
    _hub(model_args, args, problems, notes)
    if problems:
        raise ConfigError(problems)
    return notes


@dataclass
class NerArguments:
    """The flags ``run_ner.py`` adds, in the HF ``run_ner.py`` example's spelling. Its ``--task_name`` (``NER_TASKS``)
    names no GLUE task: it picks the JSON tag column ``<task>_tags`` and names the task in the results."""
    text_column_name: Optional[str] = _flag(None, (
        "JSON lines: the column of each sentence's token list (default tokens); --label_column_name names the tag"
        " list's (default tags, else <task_name>_tags, e.g. ner_tags)"))
    label_all_tokens: bool = _flag(False, (
        "train every piece of a word on its tag (B-X's later pieces on I-X), not only its first piece"))
    return_entity_level_metrics: bool = _flag(False, (
        "also report each entity type's precision, recall, f1 and number (TYPE_f1, ...)"))
    preprocessing_num_workers: Optional[int] = _flag(None, (
        "accepted; no effect here (the tokenizer is fast enough in one process)"))
    task: str = field(default="ner", init=False)  # from --task_name


def _token_data_source(ner_args: NerArguments, data_args, args, problems: list, notes: list) -> None:
    """--task_name moves to ``ner_args.task``; the data is --dataset_name's splits, or files of tokens and tags
    (any name: .json/.jsonl are JSON lines, the rest CoNLL)."""
    task = (data_args.task_name or "ner").lower()
    if task not in NER_TASKS:
        problems.append(f"--task_name {data_args.task_name}: expected one of {', '.join(NER_TASKS)}")
    ner_args.task, data_args.task_name = task, None
    if ner_args.preprocessing_num_workers is not None:
        notes.append("note: --preprocessing_num_workers has no effect here")
    if data_args.dataset_name:
        return
    needed = {"train_file": args.do_train, "validation_file": args.do_eval}
    missing = [f"--{name}" for name, need in needed.items() if need and not getattr(data_args, name)]
    if missing:
        problems.append(f"no data: give the files your flags need ({', '.join(missing)})")
    if args.do_predict and not data_args.test_file:
        notes.append("note: --do_predict without --test_file: nothing to predict")


def finalize_ner(model_args, data_args, args, ner_args: NerArguments, gpu_available: bool) -> list:
    """``finalize`` with run_ner.py's data flags; returns the notes to print, raises ``ConfigError``."""
    return finalize(model_args, data_args, args, gpu_available, data_source=partial(_token_data_source, ner_args))
