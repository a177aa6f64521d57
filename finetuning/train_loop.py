"""A lean finetuning loop: dynamic padding, length grouping, gradient accumulation, bf16/fp16 autocast, resumable.

Why not the HF ``Trainer``: each job here is small and there are hundreds of them; this loop starts in no time,
pads each batch only to its own longest row (rounded up to a multiple of 8 on GPU for tensor cores) and evaluates
in length-sorted batches. Multi-GPU groups run it under ``torchrun`` with DistributedDataParallel.

One optimizer step takes ``batch_size x world_size x gradient_accumulation_steps`` rows, split into micro-batches;
each micro-batch's mean loss is weighted by its share of the step's rows, so a step's gradient is the mean over
the step's rows however it is split (8 x 2 accumulation = a batch of 16). The data order of epoch ``e`` depends
only on ``(seed, e)``, which is what lets a checkpoint resume mid-epoch to exactly the uninterrupted run.
"""
import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from transformers import get_scheduler

from pipeline.errors import DataError, ExtremeBertError

# Rows per length-sorted "megabatch" when grouping by length, in batches (as in the HF LengthGroupedSampler):
# large enough that batches have near-uniform lengths, small enough that order stays random across the epoch.
_MEGABATCH_BATCHES = 50


class TrainingDiverged(ExtremeBertError):
    """A loss became inf or NaN: the weights are lost, and a rerun with the same settings would only diverge again,
    so the job fails (the search records it failed, and never selects it)."""

    def __init__(self, what: str, value: float, step: int, learning_rate: float):
        super().__init__(f"training diverged at step {step}: the {what} is {value} (learning rate {learning_rate:g});"
                         f" try a lower learning rate (--learning_rate), or more warmup")


@dataclass
class TrainSettings:
    """Everything that decides the trained weights; a checkpoint resumes only a run of the same settings."""
    batch_size: int  # rows per device per forward pass
    learning_rate: float
    epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides epochs
    gradient_accumulation_steps: int = 1
    weight_decay: float = 0.0
    adam_betas: tuple = (0.9, 0.999)
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0  # 0 = no clipping
    lr_scheduler_type: str = "linear"
    lr_scheduler_kwargs: dict = field(default_factory=dict)
    warmup_steps: float = 0  # steps, or a fraction of all steps when < 1; overrides warmup_ratio
    warmup_ratio: float = 0.0
    seed: int = 42  # data order
    sampling: str = "random"  # random | sequential | group_by_length
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    pad_to: int = 0  # pad every batch to this width (0 = to its own longest row)


@dataclass(frozen=True)
class StepPlan:
    """How many optimizer steps the run makes, and how they fall into epochs."""
    rows_per_step: int  # all devices and accumulated micro-batches together
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int


def _min_rows_per_step(settings: TrainSettings, world_size: int) -> int:
    """A step needs a row for every rank's every micro-batch under DDP (ranks must take the same number of steps);
    alone, a short last step simply has fewer micro-batches."""
    return world_size * settings.gradient_accumulation_steps if world_size > 1 else 1


def plan_steps(n_rows: int, settings: TrainSettings, world_size: int = 1) -> StepPlan:
    rows_per_step = settings.batch_size * world_size * settings.gradient_accumulation_steps
    full, rest = divmod(n_rows, rows_per_step)
    steps_per_epoch = full + (rest >= _min_rows_per_step(settings, world_size) and rest > 0)
    if steps_per_epoch == 0:
        raise DataError(f"{n_rows} training rows give no step at {rows_per_step} rows per step (batch size x devices x"
                        f" gradient accumulation); use a smaller batch or more rows")
    total = settings.max_steps if settings.max_steps > 0 else max(1, math.ceil(steps_per_epoch * settings.epochs))
    warmup = settings.warmup_steps
    warmup = int(warmup) if warmup >= 1 else math.ceil((warmup or settings.warmup_ratio) * total)
    # At least one step after warmup: transformers' polynomial schedule divides by (total - warmup).
    return StepPlan(rows_per_step, steps_per_epoch, total, min(warmup, total - 1))


def epoch_steps(lengths, rows_per_step: int, seed: int, epoch: int, sampling: str, min_rows: int = 1) -> list:
    """Row indices of every optimizer step of epoch ``epoch``: shuffled (unless sequential), and with
    group_by_length of similar lengths. The same (seed, epoch) always gives the same steps."""
    rng = np.random.default_rng([seed, epoch])
    order = np.arange(len(lengths)) if sampling == "sequential" else rng.permutation(len(lengths))
    grouped = sampling == "group_by_length"
    if grouped:
        mega = rows_per_step * _MEGABATCH_BATCHES
        order = np.concatenate([chunk[np.argsort(-lengths[chunk], kind="stable")]
                                for chunk in np.array_split(order, max(1, math.ceil(len(order) / mega)))])
    steps = [order[i:i + rows_per_step] for i in range(0, len(order), rows_per_step)]
    if grouped:
        steps = [steps[i] for i in rng.permutation(len(steps))]  # no long-to-short trend within an epoch
    return [rows for rows in steps if len(rows) >= min_rows]


def collate(encoded, rows, pad_id: int, pad_multiple: int = 1, pad_to: int = 0) -> dict:
    """Tensors for ``rows`` of an ``EncodedSplit``, padded to the longest row of this batch (or to ``pad_to``);
    a token split's per-token labels are padded with -100 (no loss)."""
    lengths = [int(encoded.offsets[i + 1] - encoded.offsets[i]) for i in rows]
    width = -(-max(*lengths, pad_to) // pad_multiple) * pad_multiple
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    token_type_ids = np.zeros((len(rows), width), dtype=np.int64)
    token_labels = np.full((len(rows), width), -100, dtype=np.int64) if encoded.token_labels is not None else None
    for j, (i, n) in enumerate(zip(rows, lengths)):
        input_ids[j, :n], token_type_ids[j, :n] = encoded.row(i)
        if token_labels is not None:
            token_labels[j, :n] = encoded.token_labels[encoded.offsets[i]:encoded.offsets[i + 1]]
    attention_mask = (np.arange(width) < np.asarray(lengths)[:, None]).astype(np.int64)
    batch = {"input_ids": torch.from_numpy(input_ids), "token_type_ids": torch.from_numpy(token_type_ids),
             "attention_mask": torch.from_numpy(attention_mask)}
    if token_labels is not None:
        batch["labels"] = torch.from_numpy(token_labels)
    elif encoded.labels is not None:
        batch["labels"] = torch.from_numpy(encoded.labels[np.asarray(rows)])
    return batch


def autocast_dtype(precision: str, device: torch.device):
    """The autocast dtype for ``precision``: auto = bf16 where the GPU has it, else fp16, and fp32 on a CPU;
    bf16 works on a CPU too; fp16 only on a GPU (the arguments refuse it earlier on a CPU)."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 autocast needs a CUDA device")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _optimizer(model, settings: TrainSettings, device: torch.device):
    """AdamW with no decay on biases and LayerNorm weights (as BERT and the HF Trainer do)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "LayerNorm" in name or "layernorm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel is one pass over all parameters: on CPU too it is ~1.5-2x faster than the per-tensor loop.
    return torch.optim.AdamW(groups, lr=settings.learning_rate, betas=tuple(settings.adam_betas),
                             eps=settings.adam_epsilon, fused=device.type in ("cpu", "cuda"))


class _Step:
    """One optimizer step: forward/backward over the step's micro-batches, then clip, step and schedule."""

    def __init__(self, model, encoded, settings: TrainSettings, plan: StepPlan, device, pad_id: int, rank: int,
                 world_size: int):
        self.model, self.encoded, self.settings, self.device, self.pad_id = model, encoded, settings, device, pad_id
        self.rank, self.world_size = rank, world_size
        self.optimizer = _optimizer(model, settings, device)
        self.scheduler = get_scheduler(settings.lr_scheduler_type, self.optimizer,
                                       num_warmup_steps=plan.warmup_steps, num_training_steps=plan.total_steps,
                                       scheduler_specific_kwargs=settings.lr_scheduler_kwargs or None)
        self.dtype = autocast_dtype(settings.precision, device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)  # off: passes calls through
        self.pad_multiple = 8 if device.type == "cuda" else 1

    def state_dict(self) -> dict:
        rng = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": rng}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["cpu"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    def _micro_batches(self, rows) -> list:
        chunks = np.array_split(rows, self.world_size * self.settings.gradient_accumulation_steps)
        mine = chunks[self.rank::self.world_size]  # micro-batch k of rank r is chunk k * world_size + r
        return [chunk for chunk in mine if len(chunk)] if self.world_size == 1 else mine

    def __call__(self, rows) -> float:
        """Train on ``rows`` (the whole step, all ranks); returns this rank's share of the step's mean loss."""
        micro = self._micro_batches(rows)
        total = torch.zeros((), device=self.device)
        for k, chunk in enumerate(micro):
            last = k == len(micro) - 1
            sync = contextlib.nullcontext() if last or self.world_size == 1 else self.model.no_sync()
            batch = {key: value.to(self.device, non_blocking=True) for key, value in
                     collate(self.encoded, chunk, self.pad_id, self.pad_multiple, pad_to=self.settings.pad_to).items()}
            with sync:
                with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
                    # DDP averages gradients over ranks: scale by world_size so the result is the mean over rows.
                    loss = self.model(**batch).loss.float() * (len(chunk) * self.world_size / len(rows))
                self.scaler.scale(loss).backward()
            total += loss.detach()
        self.scaler.unscale_(self.optimizer)
        if self.settings.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total.item() / self.world_size

    @property
    def learning_rate(self) -> float:
        return self.scheduler.get_last_lr()[0]


def train(model, encoded, settings: TrainSettings, plan: StepPlan, *, device, pad_id: int, rank: int = 0,
          world_size: int = 1, resume_state: Optional[dict] = None,
          after_step: Optional[Callable] = None) -> dict:
    """Train ``model`` (already on ``device``, DDP-wrapped when ``world_size`` > 1) in place.

    ``resume_state`` (from ``after_step``'s ``training_state()``) continues a run at its step, with its optimizer,
    schedule and random state. ``after_step(step, loss, learning_rate, training_state)`` runs after every step."""
    stepper = _Step(model, encoded, settings, plan, device, pad_id, rank, world_size)
    step = 0
    if resume_state is not None:
        stepper.load_state_dict(resume_state)
        step = resume_state["step"]
    first_step, started = step, time.time()

    def training_state() -> dict:
        return {"step": step, **stepper.state_dict()}

    model.train()
    min_rows = _min_rows_per_step(settings, world_size)
    while step < plan.total_steps:
        epoch, done_in_epoch = divmod(step, plan.steps_per_epoch)
        steps = epoch_steps(encoded.lengths, plan.rows_per_step, settings.seed, epoch, settings.sampling, min_rows)
        for rows in steps[done_in_epoch:]:
            loss = stepper(rows)
            step += 1
            if not math.isfinite(loss):
                raise TrainingDiverged("training loss", loss, step, settings.learning_rate)
            if after_step is not None:
                after_step(step, loss, stepper.learning_rate, training_state)
                model.train()  # an evaluation in after_step leaves the model in eval mode
            if step >= plan.total_steps:
                break
    return {"train_steps": plan.total_steps, "steps_run": step - first_step, "train_runtime_s": time.time() - started}


@torch.no_grad()
def predict(model, encoded, *, batch_size: int, device, pad_id: int, precision: str = "auto", pad_to: int = 0):
    """Logits for every row (in the split's order) and the mean loss when the split has labels. A token split's
    logits are a list with one ``[row length, labels]`` array per row."""
    model.eval()
    dtype = autocast_dtype(precision, device)
    order = np.argsort(-encoded.lengths, kind="stable")  # length-sorted batches waste almost no padding
    pad_multiple = 8 if device.type == "cuda" else 1
    outputs, loss_sum = [None] * len(order), 0.0
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate(encoded, rows, pad_id, pad_multiple, pad_to=pad_to).items()}
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            result = model(**batch)
        if result.loss is not None:
            loss_sum += result.loss.float().item() * len(rows)
        logits = result.logits.float().cpu().numpy()
        for row, value in zip(rows, logits):
            outputs[row] = value
    if encoded.word_index is not None:
        logits = [value[:n] for value, n in zip(outputs, encoded.lengths)]
    else:
        logits = np.stack(outputs) if outputs else np.zeros((0, 1), np.float32)
    loss = loss_sum / len(order) if encoded.labels is not None and len(order) else None
    return logits, loss


@dataclass(frozen=True)
class StepInterval:
    strategy: str  # no | steps | epoch
    steps: int = 0  # for "steps"

    @classmethod
    def resolve(cls, strategy: str, steps: Optional[float], total_steps: int) -> "StepInterval":
        """``steps`` < 1 is a fraction of all steps (as in transformers), rounded up."""
        if strategy != "steps":
            return cls(strategy)
        return cls(strategy, int(steps) if steps >= 1 else max(1, math.ceil(steps * total_steps)))

    def due(self, step: int, plan: StepPlan) -> bool:
        if self.strategy == "steps":
            return step % self.steps == 0
        if self.strategy == "epoch":
            return step % plan.steps_per_epoch == 0 or step == plan.total_steps
        return False


def format_metrics(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())


class TrainingMonitor:
    """Called after every optimizer step (rank 0): logs, evaluates (``evaluate(step)``: ``eval_*`` metrics) and
    checkpoints (``save(step, training_state)``) at the intervals the flags ask, the last step's evaluation left to
    the final one. A checkpoint saves its log history (``trainer_state.json``'s, in the HF ``Trainer``'s keys) and
    running loss, so that a resumed run logs what the uninterrupted one would have."""

    def __init__(self, plan: StepPlan, logging: StepInterval, evaluation: StepInterval, saving: StepInterval, *,
                 evaluate: Callable, save: Callable, report: Callable, log: Callable, logging_first_step: bool = False):
        self.plan, self.logging, self.evaluation, self.saving = plan, logging, evaluation, saving
        self.evaluate, self.save, self.report, self.log = evaluate, save, report, log
        self.logging_first_step = logging_first_step
        self.progress = None  # a search_progress.ProgressFile to keep up to date (run_glue.py --progress_file)
        self.log_history = []
        self.loss_sum, self.loss_steps = 0.0, 0  # since the last loss line
        self.total_loss, self.total_steps = 0.0, 0  # over the whole run, resumed parts included
        self.started = time.time()

    def epoch(self, step: int) -> float:
        return round(step / self.plan.steps_per_epoch, 4)

    def record(self, metrics: dict, step: int) -> dict:
        entry = {**metrics, "epoch": self.epoch(step), "step": step}
        self.log_history.append(entry)
        self.report(metrics | {"epoch": entry["epoch"]}, step)
        return entry

    def record_evaluation(self, metrics: dict, step: int, what: str = "dev") -> None:
        self.record(metrics, step)
        self.log(f"{what} at step {step}/{self.plan.total_steps} (epoch {self.epoch(step):g}):"
                 f" {format_metrics(metrics)}")

    def after_step(self, step: int, loss: float, learning_rate: float, training_state: Callable) -> None:
        self.loss_sum += loss
        self.loss_steps += 1
        self.total_loss += loss
        self.total_steps += 1
        if self.logging.due(step, self.plan) or (step == 1 and self.logging_first_step):
            self.record({"loss": round(self.loss_sum / self.loss_steps, 4), "learning_rate": learning_rate}, step)
            self.log(f"step {step}/{self.plan.total_steps} (epoch {self.epoch(step):g}): loss"
                     f" {self.loss_sum / self.loss_steps:.4f}, learning_rate {learning_rate:.3g}, elapsed"
                     f" {time.time() - self.started:.1f}s")
            self.loss_sum, self.loss_steps = 0.0, 0
        if self.evaluation.due(step, self.plan) and step < self.plan.total_steps:
            self.record_evaluation(self.evaluate(step), step)
        if self.saving.due(step, self.plan):
            self.save(step, training_state())
        if self.progress is not None:
            self.progress.update(step)

    @property
    def train_loss(self) -> float:
        return self.total_loss / self.total_steps if self.total_steps else float("nan")

    def state_dict(self) -> dict:
        return {"log_history": self.log_history, "loss_sum": self.loss_sum, "loss_steps": self.loss_steps,
                "total_loss": self.total_loss, "total_steps": self.total_steps}

    def load_state_dict(self, state: dict) -> None:
        self.log_history = list(state["log_history"])
        self.loss_sum, self.loss_steps = state["loss_sum"], state["loss_steps"]
        self.total_loss, self.total_steps = state["total_loss"], state["total_steps"]
