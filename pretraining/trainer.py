"""The pretraining loop: DeepSpeed engine, gradient accumulation, schedule, validation, budget, checkpoints, export.

Read top to bottom, ``train(args)`` does:
1. checks that need no engine (flags, tokenizer, every data file against the tokenizer), so bad input fails in
   seconds with a one-line error;
2. DeepSpeed setup (precision, ZeRO, the optimizer) and resume from the newest checkpoint;
3. the loop: one optimizer step = ``gradient_accumulation`` micro-batches; log, validate and checkpoint every N
   steps; stop exactly at ``max_steps``, at the time budget (leaving room for the final work), on SIGTERM (after
   a checkpoint) or when training diverges;
4. the end: checkpoint, validation, ``final_model/``, curves, and ``manifest.json`` last.
"""
import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import ConfigError, DataError, ExtremeBertError
from pipeline.manifest import read_json, write_manifest
from pipeline.run_ids import samples_identity
from pretraining.arguments import check_arguments
from pretraining.checkpointing import TrainState, check_signature, load_latest_checkpoint, save_checkpoint
from pretraining.data.loader import VALIDATION_SALT, SampleStream
from pretraining.data.shards import MaskingDefaults, Vocabulary, describe_dataset, list_sample_files
from pretraining.metrics_log import MetricsLog, gpu_peak_flops
from pretraining.modeling import (BertForPreTraining, build_model_config, describe, maybe_compile,
                                  pretraining_flops_per_sample)
from pretraining.schedulers import PretrainLRScheduler, lr_multiplier
from pretraining.stage import free_port

FINAL_MODEL_DIRNAME = "final_model"
REHEARSAL_POINTS = (0.5, 0.85)  # fractions of the time budget at which the end-of-run work is timed
INTERRUPT_EXIT_CODE = 143  # 128 + SIGTERM, what a shell reports for a terminated process


class TrainingStopped(ExtremeBertError):
    """The run ended before its budget for a reason that makes its model useless (divergence, early-stop rule).
    It is not marked done; rerunning the same command would resume and most likely stop again."""


class Interrupted(Exception):
    """SIGTERM/SIGINT arrived; a checkpoint was written and the same command resumes."""


# -- environment ----------------------------------------------------------------------------------------------
def ensure_distributed_env() -> tuple:
    """(rank, world size, local rank). Without a launcher, declare a one-process group: DeepSpeed would otherwise
    try MPI discovery (and fail without mpi4py)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0"))


def cpu_has_bf16_math() -> bool:
    """True when the CPU has bf16 dot-product instructions (AVX512-BF16 or AMX); without them bf16 is emulated and
    several times slower than fp32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def choose_precision(requested: str, on_gpu: bool, bf16_supported: bool) -> str:
    """fp16 needs a GPU; ``auto`` is bf16 where supported (no loss scaling, fp32 range), else fp16 on older GPUs.
    On CPU ``auto`` is bf16 where the CPU has bf16 instructions (2x the fp32 throughput of bert-mini/small on an
    AVX512-BF16 EPYC, BENCHMARKS.md), else fp32. DeepSpeed keeps fp32 master weights in every case."""
    if requested == "fp16" and not on_gpu:
        raise ConfigError("fp16 needs a GPU (DeepSpeed has no fp16 on CPU); use --bf16 or --fp32 on this machine")
    if requested == "bf16" and on_gpu and not bf16_supported:
        raise ConfigError("this GPU does not support bf16; use --fp16 (dynamic loss scaling) or --fp32")
    if requested != "auto":
        return requested
    if on_gpu:
        return "bf16" if bf16_supported else "fp16"
    return "bf16" if cpu_has_bf16_math() else "fp32"


def deepspeed_config(args, precision: str, world_size: int) -> dict:
    """The DeepSpeed config these flags describe. Mixed precision runs under ZeRO >= 1 so that DeepSpeed keeps
    fp32 master weights with a mapping we can read back for the export, and bf16 accumulates gradients in fp32
    (with ZeRO 0, DeepSpeed would accumulate them in bf16)."""
    accumulation = args.train_batch_size // (args.train_micro_batch_size_per_gpu * world_size)
    config = {
        "train_batch_size": args.train_batch_size,
        "train_micro_batch_size_per_gpu": args.train_micro_batch_size_per_gpu,
        "gradient_accumulation_steps": accumulation,
        "gradient_clipping": args.gradient_clipping,
        "steps_per_print": 2 ** 62,  # we log ourselves
        "zero_optimization": {"stage": args.zero_stage if precision == "fp32" else max(1, args.zero_stage)},
        "zero_allow_untested_optimizer": True,
    }
    if precision == "fp16":
        config["fp16"] = {"enabled": True, "loss_scale": 0, "initial_scale_power": 16, "loss_scale_window": 1000,
                          "hysteresis": 2, "min_loss_scale": 1}
    elif precision == "bf16":
        config["bf16"] = {"enabled": True}
        config["data_types"] = {"grad_accum_dtype": "fp32"}
    return config


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot load the tokenizer {name!r} ({str(e).splitlines()[0]}); give --tokenizer_name a"
                        f" tokenizer folder (the dataset stage writes one next to the samples)") from e
    if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None or len(tokenizer) < 8:
        raise DataError(f"tokenizer {name!r} loaded with {len(tokenizer)} tokens and no [MASK]/[PAD] token (an"
                        f" offline hub name gives such a stub); give --tokenizer_name the dataset's tokenizer folder")
    return tokenizer


def make_model_config(args, tokenizer_vocab_size: int):
    try:
        return build_model_config(
            args.preset, tokenizer_vocab_size, hidden_size=args.hidden_size, num_hidden_layers=args.num_hidden_layers,
            num_attention_heads=args.num_attention_heads, intermediate_size=args.intermediate_size,
            hidden_act=args.hidden_act, hidden_dropout_prob=args.hidden_dropout_prob,
            attention_probs_dropout_prob=args.attention_probs_dropout_prob,
            max_position_embeddings=args.max_position_embeddings, encoder_ln_mode=args.encoder_ln_mode)
    except ValueError as e:
        raise ConfigError(f"model shape: {e}") from e


def run_signature(args, model_config, precision: str) -> dict:
    """Settings a resumed run must share with the run that wrote the checkpoint."""
    signature = {"model": dataclasses.asdict(model_config), "lr": args.lr, "train_batch_size": args.train_batch_size,
                 "lr_schedule": args.lr_schedule, "curve": args.curve, "warmup_proportion": args.warmup_proportion,
                 "esd": [args.esd_ratio, args.esd_start_interval], "optimizer": [args.optimizer_type,
                 args.weight_decay, args.adam_beta1, args.adam_beta2, args.adam_eps, args.gradient_clipping],
                 "seed": args.seed, "precision": precision, "zero_stage": args.zero_stage}
    signature["horizon"] = args.max_steps if args.lr_schedule == "step" else args.total_training_time
    signature["data"] = samples_identity(args.dataset_path)
    return json.loads(json.dumps(signature))


def seed_dropout(seed: int, rank: int, micro_batch_index: int) -> None:
    """Dropout randomness as a function of (seed, rank, position): a resumed run draws the same masks as an
    uninterrupted one without saving every rank's RNG state."""
    state = np.random.SeedSequence([seed, rank, micro_batch_index]).generate_state(1, np.uint64)[0]
    torch.manual_seed(int(state) & (2 ** 63 - 1))


def optimizer_param_groups(model, weight_decay: float) -> list:
    """AdamW groups: no weight decay on biases and LayerNorm weights (all 1-D parameters), as in BERT."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class RunClock:
    """Training wall-clock time, continuing the elapsed time of earlier runs after a resume."""

    def __init__(self):
        self._start = time.monotonic()
        self.offset_s = 0.0

    def elapsed(self) -> float:
        return self.offset_s + time.monotonic() - self._start


class CostTracker:
    """Durations of the recurring non-training work (validation, checkpoint, export, plot). The estimate is the
    fastest of the last three: on a shared machine, interference only ever makes a measurement slower."""

    def __init__(self):
        self._seen = {}

    def record(self, kind: str, seconds: float) -> None:
        self._seen[kind] = (self._seen.get(kind, []) + [seconds])[-3:]

    def get(self, kind: str, default=None):
        return min(self._seen[kind]) if kind in self._seen else default

    def __contains__(self, kind: str) -> bool:
        return kind in self._seen


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


# -- the run --------------------------------------------------------------------------------------------------
class Run:
    """One invocation of the trainer: built by ``prepare`` (cheap checks), then ``execute`` (DeepSpeed)."""

    def __init__(self, args):
        self.args = args
        self.clock = RunClock()
        self.rank, self.world_size, self.local_rank = ensure_distributed_env()
        self.output_dir = Path(args.output_dir)

    # 1. checks before any expensive work ------------------------------------------------------------------------
    def prepare(self) -> "Run":
        args = self.args
        check_arguments(args, self.world_size)
        list_sample_files(args.dataset_path)  # a missing dataset fails before the seconds a tokenizer load takes
        self.tokenizer = load_tokenizer(args.tokenizer_name)
        self.vocab = Vocabulary.from_tokenizer(self.tokenizer)
        self.model_config = make_model_config(args, len(self.tokenizer))
        defaults = MaskingDefaults(args.masked_lm_prob, args.max_predictions_per_seq)
        self.train_shards, self.test_shards = describe_dataset(args.dataset_path, self.vocab, defaults,
                                                               self.model_config.max_position_embeddings)
        self.seq_length = self.train_shards[0].seq_length
        on_gpu = torch.cuda.is_available()
        self.precision = choose_precision(args.precision, on_gpu, on_gpu and torch.cuda.is_bf16_supported())
        self.accumulation = args.train_batch_size // (args.train_micro_batch_size_per_gpu * self.world_size)
        self.budget_s = 3600.0 * min(args.total_training_time, args.early_exit_time_marker or math.inf)
        self.signature = run_signature(args, self.model_config, self.precision)
        return self

    def log(self, message: str) -> None:
        if self.rank == 0:
            print(message, flush=True)

    # 2. engine and resume --------------------------------------------------------------------------------------
    def _build_engine(self):
        import deepspeed
        import torch.distributed as dist

        args = self.args
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
        if not dist.is_initialized():
            deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
        torch.manual_seed(args.seed)  # same initial weights on every rank and in every rerun
        self.model = BertForPreTraining(self.model_config)
        optimizer = torch.optim.AdamW(optimizer_param_groups(self.model, args.weight_decay), lr=args.lr,
                                      betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_eps)
        ds_config = deepspeed_config(args, self.precision, self.world_size)
        deepspeed.utils.logger.setLevel(logging.WARNING)  # its INFO lines would drown the training log
        # DeepSpeed's bf16 optimizer prints a memory report per parameter group; errors still raise.
        with contextlib.redirect_stdout(io.StringIO()):
            self.engine, _, _, _ = deepspeed.initialize(model=maybe_compile(self.model, args.compile),
                                                        optimizer=optimizer, config=ds_config)
        self.zero_stage = ds_config["zero_optimization"]["stage"]
        self.device = self.engine.device
        self.state = TrainState(signature=self.signature, world_size=self.world_size)
        self.scheduler = PretrainLRScheduler(self.engine.optimizer, self._multiplier, self._progress)

    def _multiplier(self, progress: float) -> float:
        a = self.args
        return lr_multiplier(progress, a.curve, a.warmup_proportion, a.esd_ratio, a.esd_start_interval)

    def _progress(self) -> float:
        """Position in the schedule of the *next* optimizer step (the scheduler sets the rate it will use)."""
        if self.args.lr_schedule == "time":
            return self.clock.elapsed() / (3600.0 * self.args.total_training_time)
        return (self.state.step + 1) / self.args.max_steps

    def _resume(self) -> None:
        state = load_latest_checkpoint(self.engine, self.output_dir)
        if state is None:
            self.log(f"starting a new run in {self.output_dir}")
            return
        check_signature(state.signature, self.signature, self.output_dir)
        if state.world_size != self.world_size:
            self.log(f"warning: resuming a {state.world_size}-process run with {self.world_size} processes: the data"
                     f" order from here on differs from the original run's")
        self.state = dataclasses.replace(state, world_size=self.world_size)
        self.clock.offset_s = state.elapsed_s  # earlier runs' time up to their checkpoint, plus this run's
        if state.scheduler:
            self.scheduler.load_state_dict(state.scheduler)
        self.log(f"resumed from step {state.step} (elapsed {state.elapsed_s / 3600:.3f} h, "
                 f"{state.samples_consumed} samples read per rank)")

    # 3. the loop -----------------------------------------------------------------------------------------------
    def _to_device(self, batch: dict) -> dict:
        return {k: (v.to(self.device, non_blocking=True) if v is not None else None) for k, v in batch.items()}

    def _all_reduce(self, values, op="sum") -> list:
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world_size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return tensor.tolist()

    def _loss_scale(self) -> float:
        optimizer = self.engine.optimizer
        scale = getattr(optimizer, "cur_scale", None)
        if scale is None:
            scale = getattr(optimizer, "loss_scale", None)
        return float(scale) if isinstance(scale, (int, float)) and self.precision == "fp16" else 1.0

    def validate(self) -> float:
        """Mean MLM loss per predicted token over the held-out files, all ranks together (fixed masks, so
        successive validations are comparable). None when the dataset has no test files."""
        if not (self.args.do_validation and self.test_shards):
            return None
        a = self.args
        per_rank_cap = -(-a.validation_max_samples // self.world_size) if a.validation_max_samples else 0
        micro_batch = a.validation_micro_batch or a.train_micro_batch_size_per_gpu
        stream = SampleStream(self.test_shards, self.vocab, micro_batch, self.rank, self.world_size, a.seed,
                              shuffle=False, repeat=False, max_samples=per_rank_cap, salt=VALIDATION_SALT)
        total, count = 0.0, 0
        self.engine.eval()
        with torch.no_grad():
            for batch in stream:
                predictions = batch.pop("num_predictions")
                if predictions == 0:
                    continue
                loss = self.engine(**self._to_device(batch))
                total += float(loss) * predictions
                count += predictions
        self.engine.train()
        total, count = self._all_reduce([total, count])
        return total / count if count else None

    def _checkpoint(self) -> None:
        started = time.monotonic()
        self.state.elapsed_s = self.clock.elapsed()
        self.state.scheduler = self.scheduler.state_dict()
        save_checkpoint(self.engine, self.output_dir, self.state, self.args.num_checkpoints_to_keep)
        self.costs.record("checkpoint", time.monotonic() - started)
        self.last_checkpoint_step = self.state.step

    def _validation_step(self) -> None:
        started = time.monotonic()
        val_loss = self.validate()
        self.costs.record("validation", time.monotonic() - started)
        self.last_validation_step = self.state.step
        if val_loss is None:
            return
        self.state.last_val_loss = val_loss
        self.metrics.log({"step": self.state.step, "val_loss": val_loss, "elapsed_s": round(self.clock.elapsed(), 3)})
        self.log(f"step {self.state.step}: validation loss {val_loss:.4f}")
        if not math.isfinite(val_loss):
            raise TrainingStopped(f"validation loss is {val_loss} at step {self.state.step}: training diverged;"
                                  f" lower --lr or use --bf16")
        a = self.args
        if (a.use_early_stopping and a.early_stop_eval_loss > 0 and self.clock.elapsed() >= 60 * a.early_stop_time
                and val_loss > a.early_stop_eval_loss):
            raise TrainingStopped(f"early stop: validation loss {val_loss:.4f} > --early_stop_eval_loss"
                                  f" {a.early_stop_eval_loss} after {a.early_stop_time} minutes")

    def _finish_reserve(self) -> float:
        """Seconds the end of the run needs (checkpoint, validation, export, curves, manifest): measured once half
        the budget is spent (``_rehearse_finish``), estimated from the step time before that."""
        step_s = self.step_seconds or 0.0
        validation = self.costs.get("validation")
        if validation is None:
            val_samples = sum(s.num_samples for s in self.test_shards) if self.args.do_validation else 0
            if self.args.validation_max_samples:
                val_samples = min(val_samples, self.args.validation_max_samples)
            # forward only: about a third of a training step's time per sample
            validation = val_samples / self.args.train_batch_size * step_s / 3
        export = self.costs.get("export", 1.0)
        checkpoint = self.costs.get("checkpoint", 3 * export)
        return 1.2 * (checkpoint + validation + export + self.costs.get("plot", 0.5))

    def _next_step_cost(self) -> float:
        a, step = self.args, self.state.step + 1
        cost = self.step_seconds or 0.0
        if a.validation_every_steps and step % a.validation_every_steps == 0:
            cost += self.costs.get("validation", 0.0)
        if step % a.checkpoint_every_steps == 0:
            cost += self.costs.get("checkpoint", 0.0)
        return cost

    def _should_stop(self) -> str:
        """"" to go on, else why the loop ends; every rank gets the same answer."""
        if self.state.step >= self.args.max_steps:
            return "max_steps"
        elapsed = self.clock.elapsed()
        if self.step_seconds is None:  # no step timed yet: nothing to forecast from
            out_of_time = elapsed >= self.budget_s
        else:
            out_of_time = elapsed + self._next_step_cost() + self._finish_reserve() >= self.budget_s
        interrupted, out_of_time = self._all_reduce([float(self.stop_signal.requested), float(out_of_time)], "max")
        if interrupted:
            return "interrupted"
        return "time_budget" if out_of_time else ""

    def _rehearse_finish(self) -> None:
        """When the time budget may bind (at the ``REHEARSAL_POINTS``), do the end-of-run work: a validation, a
        checkpoint, an export to a scratch folder and the curves, timing each, so the budget keeps a measured
        rather than guessed reserve for them (exporting a large model alone takes tens of seconds)."""
        self.rehearsals += 1
        self._validation_step()
        self._checkpoint()
        scratch = self.output_dir / ".export_timing"
        started = time.monotonic()
        self.export(scratch)
        self.costs.record("export", time.monotonic() - started)
        if self.rank == 0:
            shutil.rmtree(scratch, ignore_errors=True)
            started = time.monotonic()
            self.metrics.plot()
            self.costs.record("plot", time.monotonic() - started)

    def _train_step(self, batches) -> tuple:
        """One optimizer step; returns (summed micro losses as a tensor, predictions, samples)."""
        loss_sum = torch.zeros((), device=self.device)
        predictions = 0
        for _ in range(self.accumulation):
            batch = next(batches)
            predictions += batch.pop("num_predictions")
            if not self.first_batch_reported:
                digest = hashlib.sha1(batch["input_ids"].numpy().tobytes()).hexdigest()[:12]
                # One write with its newline: under the launcher, ranks share a pipe and print() writes the text
                # and the newline separately, so lines of two ranks could run together.
                print(f"rank {self.rank}/{self.world_size}: first training batch of this run {digest}\n", end="",
                      flush=True)
                self.first_batch_reported = True
            seed_dropout(self.args.seed, self.rank, self.state.micro_batches)
            loss = self.engine(**self._to_device(batch))
            self.engine.backward(loss)
            self.engine.step()
            loss_sum += loss.detach().float()
            self.state.micro_batches += 1
            self.state.samples_consumed += self.args.train_micro_batch_size_per_gpu
        return loss_sum, predictions

    def _log_window(self, window: dict) -> None:
        loss_sum, micro, seconds = self._all_reduce([float(window["loss"]), window["micro"], window["seconds"]])
        loss = loss_sum / micro if micro else float("nan")
        seconds /= self.world_size
        samples_per_s = window["steps"] * self.args.train_batch_size / seconds if seconds else 0.0
        row = {"step": self.state.step, "loss": loss, "lr": self.scheduler.get_last_lr()[0],
               "samples_per_s": round(samples_per_s, 2), "tokens_per_s": round(samples_per_s * self.seq_length, 1),
               "loss_scale": self._loss_scale(), "skipped_steps": self.state.skipped_steps,
               "elapsed_s": round(self.clock.elapsed(), 3)}
        if self.peak_flops:
            predictions_per_sample = window["predictions"] / max(1, window["micro"] *
                                                                 self.args.train_micro_batch_size_per_gpu)
            flops = pretraining_flops_per_sample(self.model_config, self.seq_length, predictions_per_sample)
            row["mfu"] = round(flops * samples_per_s / (self.peak_flops * self.world_size), 4)
        self.metrics.log(row)
        mfu = f" | MFU {row['mfu']:.1%}" if "mfu" in row else ""
        self.log(f"step {self.state.step}/{self.args.max_steps} | loss {loss:.4f} | lr {row['lr']:.3e} | "
                 f"{samples_per_s:.1f} samples/s{mfu} | scale {row['loss_scale']:g} | skipped "
                 f"{self.state.skipped_steps} | {row['elapsed_s'] / 3600:.3f} h")
        if not math.isfinite(loss):
            raise TrainingStopped(f"training loss is {loss} at step {self.state.step}: training diverged; lower --lr,"
                                  f" add --gradient_clipping, or use --bf16")

    def _loop(self) -> str:
        a = self.args
        stream = SampleStream(self.train_shards, self.vocab, a.train_micro_batch_size_per_gpu, self.rank,
                              self.world_size, a.seed, start_sample=self.state.samples_consumed,
                              pin_memory=torch.cuda.is_available())
        batches = iter(stream)
        window = {"loss": 0.0, "micro": 0, "seconds": 0.0, "steps": 0, "predictions": 0}
        stuck_at_min_scale = 0
        self.first_batch_reported = False
        try:
            while True:
                reason = self._should_stop()
                if reason:
                    return reason
                started = time.monotonic()
                loss_sum, predictions = self._train_step(batches)
                if self.engine.was_step_applied():
                    self.state.step += 1
                    self.scheduler.step()
                    stuck_at_min_scale = 0
                else:
                    self.state.skipped_steps += 1
                    self.log(f"step {self.state.step + 1}: fp16 overflow, step skipped (loss scale now "
                             f"{self._loss_scale():g}, {self.state.skipped_steps} skipped so far)")
                    stuck_at_min_scale = stuck_at_min_scale + 1 if self._loss_scale() <= 1.0 else 0
                    if stuck_at_min_scale >= a.min_loss_scale_steps:
                        raise TrainingStopped(f"fp16 loss scale stuck at its minimum for {stuck_at_min_scale}"
                                              f" steps: training diverged; lower --lr or use --bf16")
                    continue
                window["loss"] += loss_sum
                window["micro"] += self.accumulation
                window["predictions"] += predictions
                window["steps"] += 1
                elapsed = time.monotonic() - started
                window["seconds"] += elapsed
                # The slowest of the last 10 steps is the budget check's forecast of the next one (the first step of a
                # process is left out: one-off warm-up work makes it many times slower).
                if self.timed_steps:
                    self.recent_step_seconds = (self.recent_step_seconds + [elapsed])[-10:]
                    self.step_seconds = max(self.recent_step_seconds)
                self.timed_steps += 1
                if self.state.step % a.print_steps == 0:
                    window["loss"] = float(window["loss"])
                    self._log_window(window)
                    window = {"loss": 0.0, "micro": 0, "seconds": 0.0, "steps": 0, "predictions": 0}
                if (self.rehearsals < len(REHEARSAL_POINTS)
                        and self.clock.elapsed() > REHEARSAL_POINTS[self.rehearsals] * self.budget_s):
                    self._rehearse_finish()
                if a.validation_every_steps and self.state.step % a.validation_every_steps == 0:
                    self._validation_step()
                if self.state.step % a.checkpoint_every_steps == 0:
                    self._checkpoint()
        finally:
            batches.close()

    # 4. the end ------------------------------------------------------------------------------------------------
    def full_precision_weights(self) -> dict:
        """The model's weights in fp32, keyed like ``model.state_dict()``: DeepSpeed's fp32 master copies under
        mixed precision/ZeRO (gathered from every rank under ZeRO-3: all ranks must call this)."""
        from deepspeed.utils import safe_get_full_fp32_param

        weights = {}
        for name, param in self.model.named_parameters():
            full = safe_get_full_fp32_param(param)
            weights[name] = (full if full is not None else param.detach()).float().cpu()
        return weights

    def export(self, final_dir: Path) -> None:
        """Write the Hugging Face model folder (rank 0) from the fp32 weights."""
        import torch.distributed as dist
        from pretraining.hf_model import save_final_model

        weights = self.full_precision_weights()
        if self.rank == 0:
            with torch.device("meta"):
                model = BertForPreTraining(self.model_config)
            model.load_state_dict(weights, assign=True, strict=True)
            save_final_model(model.eval(), self.model_config, self.tokenizer, final_dir)  # atomic: tmp + rename
        dist.barrier()

    def _finish(self, reason: str) -> dict:
        if self.last_checkpoint_step != self.state.step:
            self._checkpoint()  # a crash from here on resumes at the end instead of the last periodic checkpoint
        if self.state.step != self.last_validation_step or self.state.last_val_loss is None:
            self._validation_step()
        self.export(self.output_dir / FINAL_MODEL_DIRNAME)
        samples = self.state.step * self.args.train_batch_size
        manifest = None
        if self.rank == 0:
            self.metrics.plot()
            hours = self.clock.elapsed() / 3600
            manifest = write_manifest(
                self.output_dir, "pretrain", self.manifest_settings(), steps=self.state.step, hours=hours,
                final_val_loss=self.state.last_val_loss, tokens_seen=samples * self.seq_length,
                samples_per_s=samples / (hours * 3600) if hours else 0.0, skipped_steps=self.state.skipped_steps,
                stop_reason=reason, precision=self.precision, world_size=self.world_size,
                model=describe(self.model_config))
            self.log(f"done: {self.state.step} steps in {hours:.4f} h ({reason}); final model in "
                     f"{self.output_dir / FINAL_MODEL_DIRNAME}")
        return manifest

    def manifest_settings(self) -> dict:
        if self.args.manifest_settings_file:
            settings = read_json(self.args.manifest_settings_file)
            if settings is None:
                raise ConfigError(f"--manifest_settings_file {self.args.manifest_settings_file} is not readable JSON")
            return settings
        return self.signature

    def execute(self) -> dict:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._build_engine()
        self._resume()
        self.costs, self.step_seconds, self.timed_steps, self.rehearsals = CostTracker(), None, 0, 0
        self.recent_step_seconds = []
        self.last_checkpoint_step = self.state.step
        self.last_validation_step = self.state.step if self.state.last_val_loss is not None else -1
        device_name = torch.cuda.get_device_name(self.local_rank) if torch.cuda.is_available() else "cpu"
        self.peak_flops = gpu_peak_flops(device_name, self.precision) if torch.cuda.is_available() else None
        wandb_settings = {"enabled": self.args.wandb, "mode": self.args.wandb_mode, "project": self.args.project_name,
                          "entity": self.args.wandb_entity, "name": self.args.job_name, "config": vars(self.args)}
        self.metrics = MetricsLog(self.output_dir, self.rank == 0, self.state.step, wandb_settings)
        self.log(f"{describe(self.model_config)} | {self.precision} ZeRO-{self.zero_stage} on {self.world_size} x"
                 f" {device_name} | batch {self.args.train_batch_size} = {self.args.train_micro_batch_size_per_gpu} x"
                 f" {self.world_size} x {self.accumulation} | {len(self.train_shards)} train files,"
                 f" seq {self.seq_length}")
        self.stop_signal = StopSignal()
        try:
            reason = self._loop()
            if reason == "interrupted":
                self._checkpoint()
                raise Interrupted(f"interrupted at step {self.state.step}; checkpoint saved, rerun the same command"
                                  f" to resume")
            return self._finish(reason)
        finally:
            self.stop_signal.restore()
            self.metrics.close()


def train(args) -> dict:
    """Run (or resume) pretraining as described by the parsed flags; returns the manifest (rank 0) or None."""
    return Run(args).prepare().execute()
