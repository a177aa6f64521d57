"""Pretraining, top to bottom: ``train(cfg, paths)``: the checks that need no engine, cheapest first, so that bad
input fails in seconds (``prepare_run``); the engine and the resume; the loop; the end (checkpoint, validation,
``final_model/``, curves, and ``manifest.json`` last, so that a crashed run is never complete).
"""
import dataclasses
import logging
import signal
from dataclasses import dataclass

import torch

from pipeline import layout
from pipeline.errors import ConfigError, ExitCode
from pipeline.init_checkpoint import StartingCheckpoint
from pipeline.manifest import write_manifest
from pipeline.run_ids import horizon
from pipeline.tokenizer_loading import load_tokenizer
from pretraining.arguments import PretrainPaths
from pretraining.budget import RunClock, TimeBudget, budget_seconds
from pretraining.checkpointing import TrainState, checkpoints_dir, load_latest_checkpoint, resume_candidates
from pretraining.data.shards import MaskingDefaults, Vocabulary, describe_dataset, list_sample_files
from pretraining.engine import (accumulation_steps, build_engine, ensure_distributed_env, machine_precision,
                                node_report)
from pretraining.hf_model import write_final_card
from pretraining.import_weights import read_initial_weights
from pretraining.loop import StopSignal, TrainingLoop, validation_sample_count
from pretraining.metrics_log import MetricsLog, gpu_peak_flops
from pretraining.modeling import describe, model_config_from_cfg
from pretraining.schedulers import PretrainLRScheduler, lr_multiplier
from pretraining.stage import final_model_records, stage_settings

log = logging.getLogger(__name__)

INTERRUPT_EXIT_CODE = ExitCode.SIGNAL_BASE + signal.SIGTERM  # what a shell reports for a terminated process
CONSTANT_STEP_WARMUP = 1000  # warmup steps of the originals' --lr_schedule constant_step without --num_warmup_steps


class Interrupted(Exception):
    """SIGTERM/SIGINT arrived; a checkpoint was written and the same command resumes."""


@dataclass(frozen=True)
class RunSetup:
    """Everything fixed for one invocation: the config, where it reads and writes, the data and the model shape."""

    cfg: object
    paths: PretrainPaths
    rank: int
    world_size: int
    local_rank: int
    tokenizer: object
    vocab: Vocabulary
    model_config: object
    train_shards: list
    test_shards: list
    seq_length: int
    precision: str  # the precision in effect on this machine
    accumulation: int  # micro-batches per optimizer step
    settings: dict  # what defines the run's output (the manifest's settings; pretraining.stage.stage_settings)
    initial_weights: object = None  # import_weights.InitialWeights of PRETRAIN.INIT_FROM for a new run, else None

    @property
    def signature(self) -> dict:
        """What a checkpoint must share to be resumed by this run, flat (``"PRETRAIN.LEARNING_RATE": 0.001``), so
        that a refusal names the setting that differs."""
        return {**_flatten(self.settings), "PRECISION_IN_EFFECT": self.precision}


def _flatten(mapping: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def prepare_run(cfg, paths: PretrainPaths) -> RunSetup:
    """Every check that needs no engine, cheapest first."""
    rank, world_size, local_rank = ensure_distributed_env()
    accumulation = accumulation_steps(cfg, world_size)
    list_sample_files(paths.samples_dir)  # a missing dataset fails before the seconds a tokenizer load takes
    tokenizer = load_tokenizer(paths.tokenizer, setting="--tokenizer_name")
    vocab = Vocabulary.from_tokenizer(tokenizer)
    try:
        model_config = model_config_from_cfg(cfg, len(tokenizer))
    except ValueError as e:
        raise ConfigError(f"model shape: {e}") from e
    defaults = MaskingDefaults(cfg.DATASET.MASKED_LM_PROB, cfg.DATASET.MAX_PREDICTIONS_PER_SEQ)
    train_shards, test_shards = describe_dataset(paths.samples_dir, vocab, defaults,
                                                 model_config.max_position_embeddings)
    model_config, initial = starting_weights(cfg, paths, model_config, tokenizer)
    return RunSetup(cfg=cfg, paths=paths, rank=rank, world_size=world_size, local_rank=local_rank,
                    tokenizer=tokenizer, vocab=vocab, model_config=model_config, train_shards=train_shards,
                    test_shards=test_shards, seq_length=train_shards[0].seq_length,
                    precision=machine_precision(cfg.PRETRAIN.PRECISION), accumulation=accumulation,
                    settings=stage_settings(cfg, paths.samples_dir), initial_weights=initial)


def starting_weights(cfg, paths: PretrainPaths, model_config, tokenizer) -> tuple:
    """(model config, InitialWeights or None) for PRETRAIN.INIT_FROM: the checkpoint's LayerNorm epsilon, and its
    weights checked against the model, unless a checkpoint of this run will be resumed (its weights win)."""
    if not cfg.PRETRAIN.INIT_FROM:
        return model_config, None
    resuming = bool(resume_candidates(checkpoints_dir(paths.output_dir))[0])
    checkpoint = StartingCheckpoint.locate(cfg.PRETRAIN.INIT_FROM, with_weights=not resuming)
    eps = checkpoint.config.get("layer_norm_eps", model_config.layer_norm_eps)
    model_config = dataclasses.replace(model_config, layer_norm_eps=eps)
    return model_config, None if resuming else read_initial_weights(checkpoint, model_config, tokenizer)


def _log(run: RunSetup, message: str) -> None:
    if run.rank == 0:
        log.info(message)


def resume_state(run: RunSetup, engine) -> TrainState:
    """The newest checkpoint's state, loaded into ``engine``, or a fresh state when there is none. A checkpoint may
    be continued under a longer horizon (NUM_STEPS, TOTAL_TRAINING_HOURS): the schedule then follows the new
    horizon from the current step (``make_scheduler``)."""
    asked = horizon(run.cfg)
    state = load_latest_checkpoint(engine, run.paths.output_dir, run.signature, log=lambda line: _log(run, line))
    if state is None:
        _log(run, f"starting a new run in {run.paths.output_dir}")
        return TrainState(signature=run.signature, world_size=run.world_size, horizon=asked)
    if state.world_size != run.world_size:
        _log(run, f"note: resuming a {state.world_size}-process run with {run.world_size} processes: same global"
                  f" batch, same data order (pretraining.data.loader)")
    _log(run, f"resumed from step {state.step} (elapsed {state.elapsed_s / 3600:.3f} h, {state.samples_consumed}"
              f" samples read)")
    if state.horizon and state.horizon != asked:
        _log(run, f"continuing towards a new horizon {asked} (was {state.horizon}): the learning rate follows the"
                  f" schedule over the new horizon from step {state.step} on")
    return dataclasses.replace(state, world_size=run.world_size, horizon=asked)


def make_scheduler(cfg, optimizer, state: TrainState, clock: RunClock) -> PretrainLRScheduler:
    """Warmup then the configured curve, over NUM_STEPS or TOTAL_TRAINING_HOURS; the position in it is that of
    the *next* optimizer step (the scheduler sets the rate that step will use)."""
    p = cfg.PRETRAIN
    on_time = p.SCHEDULE_BASIS == "time"
    warmup_steps = p.WARMUP_STEPS or (CONSTANT_STEP_WARMUP if p.SCHEDULE_BASIS == "constant_step" else 0)
    curve_parameters = dict(esd_ratio=p.ESD.RATIO, esd_start_interval=p.ESD.START_INTERVAL,
                            decay_rate=p.EXP.DECAY_RATE, decay_step=p.EXP.DECAY_STEP,
                            inverse_time_lambda=p.INVERSE_TIME.LAMBDA, poly_power=p.POLY.POWER,
                            step_decay_rate=p.STEP.DECAY_RATE, step_num_intervals=p.STEP.NUM_INTERVALS)

    def multiplier(progress: float) -> float:
        return lr_multiplier(progress, p.SCHEDULER, p.WARMUP_PROPORTION, num_warmup_steps=warmup_steps or None,
                             horizon=p.TOTAL_TRAINING_HOURS if on_time else p.NUM_STEPS, peak_lr=p.LEARNING_RATE,
                             **curve_parameters)

    def progress() -> float:
        return clock.elapsed() / (3600.0 * p.TOTAL_TRAINING_HOURS) if on_time else (state.step + 1) / p.NUM_STEPS

    scheduler = PretrainLRScheduler(optimizer, multiplier, progress)
    if state.scheduler:
        scheduler.load_state_dict(state.scheduler)
    return scheduler


def _describe_run(run: RunSetup, parts, device_name: str) -> str:
    p = run.cfg.PRETRAIN
    raised = f" (ZERO_STAGE {p.ZERO_STAGE}: {run.precision} runs at >= 1)" if parts.zero_stage != p.ZERO_STAGE else ""
    return (f"{describe(run.model_config)} | {run.precision} ZeRO-{parts.zero_stage}{raised} on {run.world_size} x"
            f" {device_name} | batch {p.BATCH_SIZE} = {p.MICRO_BATCH_SIZE_PER_GPU} x {run.world_size} x"
            f" {run.accumulation} | {len(run.train_shards)} train files, seq {run.seq_length}")


def finish(loop: TrainingLoop, reason: str, device_name: str):
    """Checkpoint, validate, export, plot, then write the manifest (rank 0); returns it (None on other ranks)."""
    run, state = loop.run, loop.state
    if loop.last_checkpoint_step != state.step:
        loop.checkpoint()  # a crash from here on resumes at the end instead of the last periodic checkpoint
    if state.step != loop.last_validation_step or state.last_val_loss is None:
        loop.validation_step()
    loop.export(run.paths.output_dir / layout.FINAL_MODEL)
    if run.rank != 0:
        return None
    loop.metrics.plot()
    hours = loop.clock.elapsed() / 3600
    samples = state.step * run.cfg.PRETRAIN.BATCH_SIZE
    outputs = dict(steps=state.step, hours=hours, final_val_loss=state.last_val_loss,
                   tokens_seen=samples * run.seq_length, samples_per_s=samples / (hours * 3600) if hours else 0.0,
                   skipped_steps=state.skipped_steps, stop_reason=reason, precision=run.precision,
                   world_size=run.world_size, model=describe(run.model_config), horizon=horizon(run.cfg))
    # the card before the manifest, which records its hash with the model's files
    write_final_card(run, outputs, device_name, loop.metrics.curves_path)
    manifest = write_manifest(run.paths.output_dir, "pretrain", run.settings, **outputs,
                              files=final_model_records(run.paths.output_dir))
    _log(run, f"done: {state.step} steps in {hours:.4f} h ({reason}); final model in"
              f" {run.paths.output_dir / layout.FINAL_MODEL}")
    return manifest


def train(cfg, paths: PretrainPaths) -> dict:
    """Run (or resume) pretraining; returns the manifest (rank 0) or None."""
    clock = RunClock()
    run = prepare_run(cfg, paths)
    run.paths.output_dir.mkdir(parents=True, exist_ok=True)
    initial = run.initial_weights
    parts = build_engine(cfg, run.model_config, run.precision, run.world_size, run.local_rank,
                         start_from=initial.apply if initial else None)
    if initial:
        _log(run, initial.describe())
    state = resume_state(run, parts.engine)
    clock.offset_s = state.elapsed_s  # earlier runs' time up to their checkpoint, plus this run's
    scheduler = make_scheduler(cfg, parts.engine.optimizer, state, clock)
    p = cfg.PRETRAIN
    budget = TimeBudget(budget_seconds(cfg), p.BATCH_SIZE, validation_sample_count(cfg, run.test_shards),
                        p.VALIDATION_EVERY_STEPS, p.CHECKPOINT_EVERY_STEPS)
    device_name = torch.cuda.get_device_name(run.local_rank) if torch.cuda.is_available() else "cpu"
    metrics = MetricsLog(run.paths.output_dir, run.rank == 0, state.step, cfg if cfg.WANDB.ENABLED else None,
                         run.paths.tensorboard_dir if cfg.SYSTEM.TENSORBOARD else None)
    _log(run, _describe_run(run, parts, device_name))
    if run.local_rank == 0:
        log.info(node_report(run.rank, run.local_rank))  # one write with its newline: ranks share a pipe
    stop_signal = StopSignal()
    loop = TrainingLoop(run, parts, state, scheduler, clock, budget, metrics, stop_signal,
                        gpu_peak_flops(device_name, run.precision))  # None on a CPU
    try:
        if initial and state.step == 0:
            loop.validation_step()  # the starting model on this data: the baseline the run improves on (step 0)
        reason = loop.run_until_stop()
        if reason == "interrupted":
            loop.checkpoint()
            raise Interrupted(f"interrupted at step {state.step}; checkpoint saved, rerun the same command to resume")
        return finish(loop, reason, device_name)
    finally:
        stop_signal.restore()
        metrics.close()
