"""``--report_to wandb``: the run's loss lines and evaluations to Weights & Biases, under the HF ``Trainer``'s names.

Metric names follow the HF ``WandbCallback`` (``eval_f1`` -> ``eval/f1``, ``loss`` -> ``train/loss``), the project
is ``$WANDB_PROJECT`` (default ``huggingface``, as there) and ``WANDB_MODE`` works as usual (``offline`` needs no
network, ``disabled`` logs nothing). A run resumed from a checkpoint continues the same wandb run.
"""
import os
from typing import Optional

from pipeline.errors import DataError

DEFAULT_PROJECT = "huggingface"


def _wandb_name(key: str) -> str:
    for prefix in ("eval_", "test_"):
        if key.startswith(prefix):
            return f"{prefix[:-1]}/{key[len(prefix):]}"
    return f"train/{key}"


class WandbReport:
    """One wandb run; ``log`` takes metrics in the log-history keys."""

    def __init__(self, run_name: str, config: dict, output_dir: str, run_id: Optional[str] = None):
        import wandb

        try:
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT), name=run_name,
                                  config=config, dir=output_dir, id=run_id, resume="allow" if run_id else None)
        except Exception as e:  # no key, no network, a bad mode: all mean the same to the user
            first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DataError(f"wandb could not start: {first_line}; set WANDB_API_KEY, or WANDB_MODE=offline to log"
                            f" without a network, or drop --report_to wandb")

    @property
    def run_id(self) -> Optional[str]:
        return getattr(self.run, "id", None)

    def log(self, metrics: dict, step: int) -> None:
        self.run.log({_wandb_name(k): v for k, v in metrics.items()}, step=step)

    def finish(self) -> None:
        self.run.finish()
