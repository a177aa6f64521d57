"""The training loop: one optimizer step = ``accumulation`` micro-batches; log, validate and checkpoint every N
steps; stop exactly at NUM_STEPS, at the time budget (leaving room for the end-of-run work), on SIGTERM (after a
checkpoint) or when training diverges."""
import hashlib
import logging
import math
import shutil
import signal
import time
from collections import Counter

import numpy as np
import torch

from pipeline.errors import ExitCode, ExtremeBertError
from pipeline.log_setup import format_duration
from pretraining.checkpointing import save_checkpoint
from pretraining.data.loader import VALIDATION_SALT, SampleStream
from pretraining.engine import all_reduce, loss_scale
from pretraining.hf_model import export_final_model
from pretraining.modeling import pretraining_flops_per_sample

log = logging.getLogger(__name__)

LOWER_LR = "PRETRAIN.LEARNING_RATE, --lr"  # what a diverged run's line tells both main.py and script users to lower


class TrainingStopped(ExtremeBertError):
    """The run ended before its budget for a reason that makes its model useless (divergence, early-stop rule).
    It is not marked done; rerunning the same command would resume and most likely stop again."""

    exit_code = ExitCode.STOPPED


def seed_dropout(seed: int, rank: int, micro_batch_index: int) -> None:
    """Dropout randomness as a function of (seed, rank, position): a resumed run draws the same masks as an
    uninterrupted one without saving every rank's RNG state."""
    state = np.random.SeedSequence([seed, rank, micro_batch_index]).generate_state(1, np.uint64)[0]
    torch.manual_seed(int(state) & (2 ** 63 - 1))


class StopSignal:
    """Turns SIGTERM/SIGINT into a flag the loop checks between steps (a second SIGINT kills at once)."""

    def __init__(self):
        self.requested = False
        self._previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. called from a test worker thread): no handler
                pass

    def _handle(self, signum, frame):
        self.requested = True
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def held_out_loss(engine, test_shards, vocab, cfg, rank: int, world_size: int):
    """The validation loss: the mean MLM loss per predicted token over the first VALIDATION_MAX_SAMPLES held-out
    samples (all ranks together), with masks fixed by the seed so that successive validations are comparable, and
    the same samples and masks for any number of processes; None when there is nothing to validate on."""
    p = cfg.PRETRAIN
    if not (p.VALIDATE and test_shards):
        return None
    micro_batch = p.VALIDATION_MICRO_BATCH or p.MICRO_BATCH_SIZE_PER_GPU
    stream = SampleStream(test_shards, vocab, micro_batch, rank, world_size, cfg.SYSTEM.SEED, shuffle=False,
                          repeat=False, max_samples=p.VALIDATION_MAX_SAMPLES, salt=VALIDATION_SALT)
    total, count = 0.0, 0
    engine.eval()
    with torch.no_grad():
        for batch in stream:
            predictions = batch.pop("num_predictions")
            if predictions == 0:
                continue
            loss = engine(**{k: (v.to(engine.device) if v is not None else None) for k, v in batch.items()})
            total += float(loss) * predictions
            count += predictions
    engine.train()
    total, count = all_reduce([total, count], engine.device, world_size)
    return total / count if count else None


def validation_sample_count(cfg, test_shards) -> int:
    """Samples one validation reads (all ranks together)."""
    available = sum(shard.num_samples for shard in test_shards) if cfg.PRETRAIN.VALIDATE else 0
    return min(available, cfg.PRETRAIN.VALIDATION_MAX_SAMPLES or available)


class TrainingLoop:
    """Owns what changes while training: the train state, the schedule, the budget and the log windows."""

    def __init__(self, run, parts, state, scheduler, clock, budget, metrics, stop_signal, peak_flops):
        self.run = run  # trainer.RunSetup: config, paths, data, model config, precision (fixed for the run)
        self.parts = parts  # engine.EngineParts
        self.state = state  # checkpointing.TrainState
        self.scheduler = scheduler
        self.clock = clock
        self.budget = budget  # budget.TimeBudget
        self.metrics = metrics  # metrics_log.MetricsLog
        self.stop_signal = stop_signal
        self.peak_flops = peak_flops  # the devices' peak FLOP/s for MFU (None on CPU)
        self.last_checkpoint_step = state.step
        self.last_validation_step = state.step if state.last_val_loss is not None else -1
        self.first_batch_reported = False

    # -- bookkeeping ---------------------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        if self.run.rank == 0:
            log.info(message)

    def checkpoint(self) -> None:
        started = time.monotonic()
        self.state.elapsed_s = self.clock.elapsed()
        self.state.scheduler = self.scheduler.state_dict()
        run = self.run
        save_checkpoint(self.parts.engine, run.paths.output_dir, self.state, run.cfg.PRETRAIN.KEEP_CHECKPOINTS)
        self.metrics.flush()
        self.budget.costs.record("checkpoint", time.monotonic() - started)
        self.last_checkpoint_step = self.state.step

    def validation_step(self) -> None:
        run, p = self.run, self.run.cfg.PRETRAIN
        started = time.monotonic()
        val_loss = held_out_loss(self.parts.engine, run.test_shards, run.vocab, run.cfg, run.rank, run.world_size)
        self.budget.costs.record("validation", time.monotonic() - started)
        self.last_validation_step = self.state.step
        if val_loss is None:
            return
        self.state.last_val_loss = val_loss
        self.metrics.log({"step": self.state.step, "val_loss": val_loss, "elapsed_s": round(self.clock.elapsed(), 3)})
        self.log(f"step {self.state.step}: validation loss {val_loss:.4f}")
        if not math.isfinite(val_loss):
            raise TrainingStopped(f"validation loss is {val_loss} at step {self.state.step}: training diverged;"
                                  f" lower the learning rate ({LOWER_LR}) or use bf16")
        if (p.EARLY_STOP_EVAL_LOSS > 0 and self.clock.elapsed() >= 60 * p.EARLY_STOP_TIME_MINUTES
                and val_loss > p.EARLY_STOP_EVAL_LOSS):
            raise TrainingStopped(f"early stop: validation loss {val_loss:.4f} > --early_stop_eval_loss"
                                  f" {p.EARLY_STOP_EVAL_LOSS} after {p.EARLY_STOP_TIME_MINUTES} minutes")

    def export(self, final_dir) -> None:
        export_final_model(self.parts.model, self.run.model_config, self.run.tokenizer, final_dir, self.run.rank)

    def rehearse_finish(self) -> None:
        """Do the end-of-run work once (a validation, a checkpoint, an export to a scratch folder, the curves),
        timing each, so that the budget keeps a measured rather than guessed reserve for them (exporting a large
        model alone takes tens of seconds)."""
        self.validation_step()
        self.checkpoint()
        scratch = self.run.paths.output_dir / ".export_timing"
        started = time.monotonic()
        self.export(scratch)
        self.budget.costs.record("export", time.monotonic() - started)
        if self.run.rank == 0:
            shutil.rmtree(scratch, ignore_errors=True)
            started = time.monotonic()
            self.metrics.plot()
            self.budget.costs.record("plot", time.monotonic() - started)

    def should_stop(self) -> str:
        """"" to go on, else why the loop ends; every rank gets the same answer."""
        if self.state.step >= self.run.cfg.PRETRAIN.NUM_STEPS:
            return "max_steps"
        out_of_time = self.budget.out_of_time(self.clock.elapsed(), self.state.step + 1)
        interrupted, out_of_time = all_reduce([float(self.stop_signal.requested), float(out_of_time)],
                                              self.parts.device, self.run.world_size, "max")
        if interrupted:
            return "interrupted"
        return "time_budget" if out_of_time else ""

    # -- one step ------------------------------------------------------------------------------------------------
    def _report_first_batch(self, batch) -> None:
        digest = hashlib.sha1(batch["input_ids"].numpy().tobytes()).hexdigest()[:12]
        # One write with its newline: under the launcher, ranks share a pipe and print() writes the text and the
        # newline separately, so lines of two ranks could run together.
        print(f"rank {self.run.rank}/{self.run.world_size}: first training batch of this run {digest}\n", end="",
              flush=True)
        self.first_batch_reported = True

    def train_step(self, batches) -> tuple:
        """One optimizer step's micro-batches; returns (the step's loss summed over this rank's predicted tokens,
        as a tensor, this rank's predicted tokens, and its real tokens: every position that is not padding).

        The step's loss is the mean over every predicted token of the global batch, whatever the split into ranks
        and micro-batches: each micro-batch's mean loss is weighted by its share of the global batch's predicted
        tokens, times ``world_size x accumulation`` because DeepSpeed averages over both (the data-order rule in
        ``pretraining.data.loader``)."""
        engine, run = self.parts.engine, self.run
        micro_batches = [next(batches) for _ in range(run.accumulation)]
        counts = [batch.pop("num_predictions") for batch in micro_batches]
        (step_predictions,) = all_reduce([sum(counts)], self.parts.device, run.world_size)
        loss_sum = torch.zeros((), device=self.parts.device)
        real_tokens = sum(int(batch["attention_mask"].sum()) for batch in micro_batches)
        for batch, count in zip(micro_batches, counts):
            if not self.first_batch_reported:
                self._report_first_batch(batch)
            seed_dropout(run.cfg.SYSTEM.SEED, run.rank, self.state.micro_batches)
            loss = engine(**{k: (v.to(engine.device, non_blocking=True) if v is not None else None)
                             for k, v in batch.items()})
            weight = count * run.world_size * run.accumulation / step_predictions if step_predictions else 0.0
            engine.backward(loss * weight)
            engine.step()
            loss_sum += loss.detach().float() * count
            self.state.micro_batches += 1
            self.state.samples_consumed += run.cfg.PRETRAIN.MICRO_BATCH_SIZE_PER_GPU * run.world_size
        return loss_sum, sum(counts), real_tokens

    def log_window(self, window: dict) -> None:
        run, p = self.run, self.run.cfg.PRETRAIN
        loss_sum, predictions, seconds, real_tokens = all_reduce(
            [float(window["loss"]), window["predictions"], window["seconds"], window["real_tokens"]],
            self.parts.device, run.world_size)
        loss = loss_sum / predictions if predictions else float("nan")  # mean over every predicted token
        seconds /= run.world_size
        samples_per_s = window["steps"] * p.BATCH_SIZE / seconds if seconds else 0.0
        row = {"step": self.state.step, "loss": loss, "lr": self.scheduler.get_last_lr()[0],
               "samples_per_s": round(samples_per_s, 2), "tokens_per_s": round(samples_per_s * run.seq_length, 1),
               # what the model learns from: tokens_per_s counts every position of a row, padding included
               "real_tokens_per_s": round(real_tokens / seconds, 1) if seconds else 0.0,
               "loss_scale": loss_scale(self.parts.engine, run.precision), "skipped_steps": self.state.skipped_steps,
               "elapsed_s": round(self.clock.elapsed(), 3)}
        if self.peak_flops:
            predictions_per_sample = window["predictions"] / max(1, window["micro"] * p.MICRO_BATCH_SIZE_PER_GPU)
            flops = pretraining_flops_per_sample(run.model_config, run.seq_length, predictions_per_sample)
            row["mfu"] = round(flops * samples_per_s / (self.peak_flops * run.world_size), 4)
        self.metrics.log(row)
        mfu = f" | MFU {row['mfu']:.1%}" if "mfu" in row else ""
        eta, ends_by = self.budget.eta(row["elapsed_s"], self.state.step, p.NUM_STEPS,
                                       seconds / window["steps"] if window["steps"] else 0.0)
        of_steps = "" if p.SCHEDULE_BASIS == "time" else f"/{p.NUM_STEPS}"  # a time budget: the steps are open
        self.log(f"step {self.state.step}{of_steps} | loss {loss:.4f} | lr {row['lr']:.3e} | {samples_per_s:.1f}"
                 f" samples/s, {row['real_tokens_per_s']:,.0f} real tokens/s{mfu} | scale {row['loss_scale']:g} |"
                 f" skipped {self.state.skipped_steps} | {row['elapsed_s'] / 3600:.3f} h | ETA {format_duration(eta)}"
                 f" ({ends_by})")
        if not math.isfinite(loss):
            raise TrainingStopped(f"training loss is {loss} at step {self.state.step}: training diverged; lower the"
                                  f" learning rate ({LOWER_LR}), clip gradients (PRETRAIN.GRADIENT_CLIPPING,"
                                  f" --gradient_clipping) or use bf16")

    def _skipped_step(self, stuck_at_min_scale: int) -> int:
        """Count an fp16 overflow; returns the new count of overflows in a row at the minimum loss scale."""
        scale = loss_scale(self.parts.engine, self.run.precision)
        self.state.skipped_steps += 1
        self.log(f"step {self.state.step + 1}: fp16 overflow, step skipped (loss scale now {scale:g},"
                 f" {self.state.skipped_steps} skipped so far)")
        stuck_at_min_scale = stuck_at_min_scale + 1 if scale <= 1.0 else 0
        if stuck_at_min_scale >= self.run.cfg.PRETRAIN.MIN_LOSS_SCALE_STEPS:
            raise TrainingStopped(f"fp16 loss scale stuck at its minimum for {stuck_at_min_scale} steps: training"
                                  f" diverged; lower the learning rate ({LOWER_LR}) or use bf16")
        return stuck_at_min_scale

    # -- the loop ------------------------------------------------------------------------------------------------
    def run_until_stop(self) -> str:
        """Train until a stop condition; returns its reason (max_steps, time_budget or interrupted)."""
        run, p = self.run, self.run.cfg.PRETRAIN
        stream = SampleStream(run.train_shards, run.vocab, p.MICRO_BATCH_SIZE_PER_GPU, run.rank, run.world_size,
                              run.cfg.SYSTEM.SEED, rank_share=p.MICRO_BATCH_SIZE_PER_GPU * run.accumulation,
                              start_sample=self.state.samples_consumed, pin_memory=torch.cuda.is_available())
        batches = iter(stream)
        window = Counter()  # sums over the steps since the last log line
        stuck_at_min_scale = 0
        try:
            while True:
                reason = self.should_stop()
                if reason:
                    return reason
                started = time.monotonic()
                loss_sum, predictions, real_tokens = self.train_step(batches)
                if not self.parts.engine.was_step_applied():
                    stuck_at_min_scale = self._skipped_step(stuck_at_min_scale)
                    continue
                stuck_at_min_scale = 0
                self.state.step += 1
                self.scheduler.step()
                elapsed = time.monotonic() - started
                window.update(loss=loss_sum, micro=run.accumulation, predictions=predictions, steps=1, seconds=elapsed,
                              real_tokens=real_tokens)
                self.budget.record_step(elapsed)
                if self.state.step % p.LOG_EVERY_STEPS == 0:
                    self.log_window(window)
                    window = Counter()
                if self.budget.rehearsal_due(self.clock.elapsed()):
                    self.rehearse_finish()
                if p.VALIDATION_EVERY_STEPS and self.state.step % p.VALIDATION_EVERY_STEPS == 0:
                    self.validation_step()
                if self.state.step % p.CHECKPOINT_EVERY_STEPS == 0:
                    self.checkpoint()
        finally:
            batches.close()
