"""Our contender: the pipeline's pretraining pieces in the benchmark's clock. The engine, the sample stream, the
train step and the learning-rate schedule are ``pretraining.trainer``'s; the loop is the harness's (train until the
budget, export at the snapshot points), so that every contender stops and is exported the same way."""
import json

import torch

from benchmarks.time_to_quality.harness import Snapshots, TrainingClock
from pipeline.run_ids import horizon
from pretraining.arguments import PretrainPaths
from pretraining.checkpointing import TrainState
from pretraining.data.loader import SampleStream
from pretraining.engine import build_engine
from pretraining.hf_model import export_final_model
from pretraining.loop import TrainingLoop
from pretraining.modeling import describe
from pretraining.trainer import make_scheduler, prepare_run

LOG_EVERY = 25


def train_ours(cfg, paths: PretrainPaths, budget_s: float, points: int) -> None:
    run = prepare_run(cfg, paths)
    parts = build_engine(cfg, run.model_config, run.precision, run.world_size, run.local_rank)
    state = TrainState(signature=run.signature, world_size=run.world_size, horizon=horizon(cfg))
    clock = TrainingClock()
    scheduler = make_scheduler(cfg, parts.engine.optimizer, state, clock)
    loop = TrainingLoop(run, parts, state, scheduler, clock, budget=None, metrics=None, stop_signal=None,
                        peak_flops=None)
    p = cfg.PRETRAIN
    print(f"ours: {describe(run.model_config)} | {run.precision} | batch {p.BATCH_SIZE} | {p.SCHEDULER} over"
          f" {budget_s:.0f} s, peak lr {p.LEARNING_RATE:g}", flush=True)

    def export(folder):
        export_final_model(parts.model, run.model_config, run.tokenizer, folder, run.rank)

    snapshots = Snapshots(paths.output_dir, budget_s, points, export)
    stream = SampleStream(run.train_shards, run.vocab, p.MICRO_BATCH_SIZE_PER_GPU, run.rank, run.world_size,
                          cfg.SYSTEM.SEED, rank_share=p.MICRO_BATCH_SIZE_PER_GPU * run.accumulation,
                          pin_memory=torch.cuda.is_available())
    batches = iter(stream)
    window_loss, window_predictions, real_tokens = 0.0, 0, 0
    with open(paths.output_dir / "train_log.jsonl", "w", encoding="utf-8") as log:
        clock.start()
        while not snapshots.finished(clock):
            lr = scheduler.get_last_lr()[0]
            loss_sum, predictions, step_real_tokens = loop.train_step(batches)
            real_tokens += step_real_tokens
            if parts.engine.was_step_applied():
                state.step += 1
                scheduler.step()
            window_loss, window_predictions = window_loss + loss_sum, window_predictions + predictions
            if state.step % LOG_EVERY == 0:
                row = {"step": state.step, "train_s": round(clock.elapsed(), 2), "lr": lr,
                       "loss": float(window_loss) / max(1, window_predictions)}
                log.write(json.dumps(row) + "\n")
                log.flush()
                window_loss, window_predictions = 0.0, 0
            snapshots.maybe_take(clock, state.step, state.samples_consumed, real_tokens)
    batches.close()
    print(f"ours: {state.step} steps, {state.samples_consumed} samples ({real_tokens:,} real tokens: padding not"
          f" counted) in {clock.elapsed():.0f} s", flush=True)
