"""Value checks on a merged config: ranges, choices, cross-key rules and input folders, one line per problem.

Stage packages add their own checks through a ``validate_config(cfg) -> list[str]`` function in their stage
module; they run after the checks here.
"""
import importlib
from pathlib import Path

from pipeline.config import get_key

CHOICES = {
    "WANDB.MODE": ("online", "offline", "disabled"),
    "DATASET.ENCODING_ERRORS": ("strict", "replace", "ignore"),
    "DATASET.MASKING": ("static", "dynamic"),
    "MODEL.PRESET": ("bert-tiny", "bert-mini", "bert-small", "bert-medium", "bert-base", "bert-large"),
    "MODEL.HIDDEN_ACT": ("gelu", "relu", "gelu_new"),
    "MODEL.ENCODER_LN_MODE": ("pre-ln", "post-ln"),
    "PRETRAIN.SCHEDULE_BASIS": ("step", "time"),
    "PRETRAIN.SCHEDULER": ("esd", "linear", "cosine", "constant"),
    "PRETRAIN.PRECISION": ("auto", "fp16", "bf16", "fp32"),
    "PRETRAIN.OPTIMIZER": ("adamw",),
    "FINETUNE.LR_SCHEDULER": ("polynomial", "linear", "cosine", "constant"),
    "FINETUNE.PRECISION": ("auto", "fp16", "bf16", "fp32"),
}

# key: (low, high, low_inclusive, high_inclusive); None = unbounded on that side.
RANGES = {
    "SYSTEM.NUM_GPUS": (-1, None, True, True),
    "SYSTEM.MAX_MEMORY_IN_GB": (0, None, False, True),
    "SYSTEM.NUM_WORKERS": (0, None, True, True),
    "SYSTEM.MASTER_PORT": (0, 65535, True, True),
    "TOKENIZER.VOCAB_SIZE": (8, None, True, True),
    "TOKENIZER.MIN_FREQUENCY": (1, None, True, True),
    "TOKENIZER.TRAIN_MAX_CHARS": (0, None, True, True),
    "DATASET.NUM_TRAIN_SHARDS": (1, None, True, True),
    "DATASET.NUM_TEST_SHARDS": (0, None, True, True),
    "DATASET.FRAC_TEST": (0, 1, True, False),
    "DATASET.MAX_SEQ_LENGTH": (8, None, True, True),
    "DATASET.MASKED_LM_PROB": (0, 1, False, False),
    "DATASET.MAX_PREDICTIONS_PER_SEQ": (1, None, True, True),
    "DATASET.DUP_FACTOR": (1, None, True, True),
    "MODEL.HIDDEN_SIZE": (0, None, True, True),
    "MODEL.NUM_HIDDEN_LAYERS": (0, None, True, True),
    "MODEL.NUM_ATTENTION_HEADS": (0, None, True, True),
    "MODEL.INTERMEDIATE_SIZE": (0, None, True, True),
    "MODEL.HIDDEN_DROPOUT_PROB": (0, 1, True, False),
    "MODEL.ATTENTION_PROBS_DROPOUT_PROB": (0, 1, True, False),
    "MODEL.MAX_POSITION_EMBEDDINGS": (8, None, True, True),
    "PRETRAIN.NUM_STEPS": (1, None, True, True),
    "PRETRAIN.TOTAL_TRAINING_HOURS": (0, None, False, True),
    "PRETRAIN.WARMUP_PROPORTION": (0, 1, True, False),
    "PRETRAIN.LEARNING_RATE": (0, None, False, True),
    "PRETRAIN.BATCH_SIZE": (1, None, True, True),
    "PRETRAIN.MICRO_BATCH_SIZE_PER_GPU": (1, None, True, True),
    "PRETRAIN.WEIGHT_DECAY": (0, None, True, True),
    "PRETRAIN.ADAM_BETA1": (0, 1, True, False),
    "PRETRAIN.ADAM_BETA2": (0, 1, True, False),
    "PRETRAIN.ADAM_EPS": (0, None, False, True),
    "PRETRAIN.GRADIENT_CLIPPING": (0, None, True, True),
    "PRETRAIN.ZERO_STAGE": (0, 3, True, True),
    "PRETRAIN.LOG_EVERY_STEPS": (1, None, True, True),
    "PRETRAIN.VALIDATION_EVERY_STEPS": (0, None, True, True),
    "PRETRAIN.VALIDATION_MAX_SAMPLES": (0, None, True, True),
    "PRETRAIN.CHECKPOINT_EVERY_STEPS": (1, None, True, True),
    "PRETRAIN.KEEP_CHECKPOINTS": (1, None, True, True),
    "PRETRAIN.EARLY_STOP_TIME_MINUTES": (0, None, True, True),
    "PRETRAIN.EARLY_STOP_EVAL_LOSS": (0, None, True, True),
    "PRETRAIN.ESD.RATIO": (0, 1, False, False),
    "PRETRAIN.ESD.START_INTERVAL": (0, None, True, True),
    "FINETUNE.MAX_SEQ_LENGTH": (8, None, True, True),
    "FINETUNE.WEIGHT_DECAY": (0, None, True, True),
    "FINETUNE.WARMUP_RATIO": (0, 1, True, False),
    "FINETUNE.MAX_TRAIN_SAMPLES": (0, None, True, True),
    "FINETUNE.MAX_EVAL_SAMPLES": (0, None, True, True),
}

# Modules whose optional ``validate_config(cfg)`` adds stage-specific checks.
STAGE_MODULES = ("dataset.stage", "pretraining.stage", "finetuning.stage", "scripts.result_collection")


def _check_range(key, value, bounds):
    low, high, low_inc, high_inc = bounds
    ok_low = low is None or (value >= low if low_inc else value > low)
    ok_high = high is None or (value <= high if high_inc else value < high)
    if ok_low and ok_high:
        return None
    left = "[" if low_inc else "("
    right = "]" if high_inc else ")"
    return f"{key} = {value} is out of range {left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"


def _check_corpus_folders(cfg, problems):
    for folder in cfg.DATASET.CUSTOMIZED_DATASETS:
        path = Path(folder)
        if not path.exists():
            problems.append(f"DATASET.CUSTOMIZED_DATASETS: folder does not exist: {folder}")
        elif not path.is_dir():
            problems.append(f"DATASET.CUSTOMIZED_DATASETS: not a folder: {folder}")
        elif not any(p.is_file() for p in path.rglob("*.txt")):
            problems.append(f"DATASET.CUSTOMIZED_DATASETS: folder holds no .txt files: {folder}")


def _check_batch_sizes(cfg, problems):
    from pipeline.hardware import data_parallel_processes

    processes = data_parallel_processes(cfg)
    per_step = cfg.PRETRAIN.MICRO_BATCH_SIZE_PER_GPU * processes
    if cfg.PRETRAIN.BATCH_SIZE % per_step:
        problems.append(f"PRETRAIN.BATCH_SIZE = {cfg.PRETRAIN.BATCH_SIZE} is not divisible by MICRO_BATCH_SIZE_PER_GPU"
                        f" x processes = {cfg.PRETRAIN.MICRO_BATCH_SIZE_PER_GPU} x {processes}")


def _check_model_shape(cfg, problems):
    hidden, heads = cfg.MODEL.HIDDEN_SIZE, cfg.MODEL.NUM_ATTENTION_HEADS
    if hidden and heads and hidden % heads:
        problems.append(f"MODEL.HIDDEN_SIZE = {hidden} is not divisible by MODEL.NUM_ATTENTION_HEADS = {heads}")
    if cfg.DATASET.MAX_SEQ_LENGTH > cfg.MODEL.MAX_POSITION_EMBEDDINGS:
        problems.append(f"DATASET.MAX_SEQ_LENGTH = {cfg.DATASET.MAX_SEQ_LENGTH} exceeds MODEL.MAX_POSITION_EMBEDDINGS"
                        f" = {cfg.MODEL.MAX_POSITION_EMBEDDINGS}")


def _check_paths(cfg, problems):
    if cfg.SYSTEM.HOSTFILE and not Path(cfg.SYSTEM.HOSTFILE).is_file():
        problems.append(f"SYSTEM.HOSTFILE: file does not exist: {cfg.SYSTEM.HOSTFILE}")
    if cfg.FINETUNE.ENABLED and cfg.FINETUNE.GLUE_DIR and not Path(cfg.FINETUNE.GLUE_DIR).is_dir():
        problems.append(f"FINETUNE.GLUE_DIR: folder does not exist: {cfg.FINETUNE.GLUE_DIR}")
    if cfg.DATASET.ENABLED and not (cfg.DATASET.CUSTOMIZED_DATASETS or cfg.DATASET.HUGGINGFACE_DATASETS):
        problems.append("the dataset stage has no input: set DATASET.CUSTOMIZED_DATASETS (folders of .txt) or"
                        " DATASET.HUGGINGFACE_DATASETS, or set DATASET.ENABLED False")


def validate(cfg) -> list:
    """Every problem in ``cfg``, one line each (an empty list when the config is good)."""
    problems = []
    for key, choices in CHOICES.items():
        value = get_key(cfg, key)
        if value not in choices:
            problems.append(f"{key} = {value!r} is not one of: {', '.join(choices)}")
    for key, bounds in RANGES.items():
        message = _check_range(key, get_key(cfg, key), bounds)
        if message:
            problems.append(message)
    if cfg.DATASET.ENABLED:
        _check_corpus_folders(cfg, problems)
    _check_paths(cfg, problems)
    _check_model_shape(cfg, problems)
    if cfg.PRETRAIN.ENABLED:
        _check_batch_sizes(cfg, problems)
    for module_name in STAGE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue
        hook = getattr(module, "validate_config", None)
        if hook is not None:
            problems.extend(hook(cfg))
    return problems
