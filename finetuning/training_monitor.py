"""What happens between optimizer steps: loss lines, dev evaluations and checkpoints, at the intervals the flags ask.

``StepInterval`` is one of the HF strategies (``no``, ``steps`` every N steps, ``epoch``). ``TrainingMonitor`` keeps the
log history (``trainer_state.json``'s ``log_history``, in the HF ``Trainer``'s keys: ``loss``, ``learning_rate``,
``epoch``, ``step``, ``eval_*``) and the running loss, both of which a checkpoint saves and a resumed run restores,
so a resumed run logs what the uninterrupted one would have.
"""
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

from finetuning.train_loop import StepPlan


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
    """Called after every optimizer step (rank 0): logs, evaluates and checkpoints when due.

    ``evaluate(step)`` returns ``eval_*`` metrics; ``save(step, training_state)`` writes a checkpoint; ``report(
    metrics, step)`` forwards to wandb; ``log(line)`` prints. The evaluation due at the last step is left to the final
    evaluation that follows training."""

    def __init__(self, plan: StepPlan, logging: StepInterval, evaluation: StepInterval, saving: StepInterval, *,
                 evaluate: Callable, save: Callable, report: Callable, log: Callable, logging_first_step: bool = False):
        self.plan, self.logging, self.evaluation, self.saving = plan, logging, evaluation, saving
        self.evaluate, self.save, self.report, self.log = evaluate, save, report, log
        self.logging_first_step = logging_first_step
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
        self.log(f"{what} at step {step}/{self.plan.total_steps} (epoch {self.epoch(step):g}): {format_metrics(metrics)}")

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
