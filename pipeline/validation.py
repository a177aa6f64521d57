"""Value checks on a merged config, one line per problem: each key's choices and range (from the settings table),
cross-key rules and input folders. Each stage's ``validate_config`` adds its own (``orchestration.stages``).
"""
from pathlib import Path

from pipeline.defaults import SETTINGS, get_key
from pipeline.hardware import data_parallel_processes
from pipeline.own_task_fields import own_task_problems


def value_problems(cfg, settings) -> list:
    """The choice and range problems of ``settings`` in ``cfg``."""
    return [message for message in (setting.check_value(get_key(cfg, setting.key)) for setting in settings) if message]


def recipe_problems(cfg) -> list:
    """Cross-key rules of the PRETRAIN recipe (also checked by run_pretraining.py on its own flags)."""
    p, problems = cfg.PRETRAIN, []
    if p.WARMUP_STEPS and p.SCHEDULE_BASIS == "time":
        problems.append("PRETRAIN.WARMUP_STEPS counts steps but PRETRAIN.SCHEDULE_BASIS = time: use"
                        " WARMUP_PROPORTION, or a step basis (step, constant_step)")
    if p.WARMUP_STEPS and p.SCHEDULE_BASIS != "time" and p.WARMUP_STEPS >= p.NUM_STEPS:
        problems.append(f"PRETRAIN.WARMUP_STEPS = {p.WARMUP_STEPS} leaves no step after the warmup of"
                        f" PRETRAIN.NUM_STEPS = {p.NUM_STEPS}")
    if p.MICRO_BATCH_SIZE_PER_GPU > p.BATCH_SIZE:
        problems.append(f"PRETRAIN.MICRO_BATCH_SIZE_PER_GPU = {p.MICRO_BATCH_SIZE_PER_GPU} exceeds PRETRAIN.BATCH_SIZE"
                        f" = {p.BATCH_SIZE}")
    if p.EARLY_STOP_TIME_MINUTES > 0 and p.EARLY_STOP_EVAL_LOSS == 0:
        problems.append("PRETRAIN.EARLY_STOP_TIME_MINUTES is set but PRETRAIN.EARLY_STOP_EVAL_LOSS = 0 (off); set the"
                        " loss threshold too, or set the time back to 0")
    if p.SCHEDULE_BASIS == "time" and p.EARLY_STOP_TIME_MINUTES > 60 * p.TOTAL_TRAINING_HOURS:
        problems.append("PRETRAIN.EARLY_STOP_TIME_MINUTES is after the end of PRETRAIN.TOTAL_TRAINING_HOURS")
    return problems


def _check_batch_sizes(cfg, problems):
    processes = data_parallel_processes(cfg)
    per_step = cfg.PRETRAIN.MICRO_BATCH_SIZE_PER_GPU * processes
    if per_step < 1:  # a micro batch out of its range, reported as such
        return
    if cfg.PRETRAIN.BATCH_SIZE % per_step:
        problems.append(f"PRETRAIN.BATCH_SIZE = {cfg.PRETRAIN.BATCH_SIZE} is not divisible by MICRO_BATCH_SIZE_PER_GPU"
                        f" x processes = {cfg.PRETRAIN.MICRO_BATCH_SIZE_PER_GPU} x {processes}")
    elif cfg.PRETRAIN.GRADIENT_ACCUMULATION_STEPS not in (0, cfg.PRETRAIN.BATCH_SIZE // per_step):
        problems.append(f"PRETRAIN.GRADIENT_ACCUMULATION_STEPS = {cfg.PRETRAIN.GRADIENT_ACCUMULATION_STEPS}"
                        f" contradicts BATCH_SIZE / (MICRO_BATCH_SIZE_PER_GPU x processes) ="
                        f" {cfg.PRETRAIN.BATCH_SIZE // per_step}; set it to 0 (derived) or to that value")


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
    problems = value_problems(cfg, SETTINGS) + own_task_problems(cfg.FINETUNE.OWN_TASKS)
    _check_paths(cfg, problems)
    _check_model_shape(cfg, problems)
    if cfg.PRETRAIN.ENABLED:
        _check_batch_sizes(cfg, problems)
        problems += recipe_problems(cfg)
    return problems
