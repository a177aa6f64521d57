"""Learning-rate schedules for pretraining: linear warmup, then Elastic Step Decay (ESD), linear, cosine or constant.

Every schedule is a multiplier of the peak learning rate as a function of *progress* in [0, 1] over the whole
horizon. The horizon is either the step budget (progress = step / num_steps) or the wall-clock budget
(progress = elapsed / total_training_time); the trainer decides which and hands ``PretrainLRScheduler`` a
``progress()`` callable, so one scheduler class serves both. No DeepSpeed import: DeepSpeed only needs the
``step()``/``state_dict()`` protocol.
"""
import math
import os
from pathlib import Path
from typing import Callable, Sequence, Union

from pipeline.defaults import LR_CURVES

SCHEDULERS = LR_CURVES  # declared with the PRETRAIN.SCHEDULER setting
DEFAULT_ESD_RATIO = 2 ** -0.5
DEFAULT_ESD_START_INTERVAL = 6


def esd_multiplier(t: float, ratio: float = DEFAULT_ESD_RATIO,
                   start_interval: int = DEFAULT_ESD_START_INTERVAL) -> float:
    r"""Elastic Step Decay, the ExtremeBERT paper's eq. (1), as a multiplier of the peak rate :math:`\eta_0`.

    With ``t`` the post-warmup progress in [0, 1] (fraction of the post-warmup horizon T), r = ``ratio`` and
    l = ``start_interval``::

        eta(t) = eta_0                              for t in [0, 1 - r^l]
        eta(t) = eta_0 * (1 / (2 r))^(i - l)        for t in (1 - r^(i-1), 1 - r^i],  i >= l + 1

    Interval i therefore ends at 1 - r^i: the rate stays at its peak for the first 1 - r^l of the horizon
    (87.5% with the defaults r = 2^(-1/2), l = 6), then drops by a factor 1/(2r) (= r = 0.7071 with the defaults)
    at each interval edge while the intervals shrink geometrically by r towards t = 1, where the rate reaches 0.
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ESD ratio must be in (0, 1), got {ratio}")
    if start_interval < 0:
        raise ValueError(f"ESD start_interval must be >= 0, got {start_interval}")
    t = min(max(float(t), 0.0), 1.0)
    if t >= 1.0:
        return 0.0  # the limit of the geometric decay: the horizon's end has an empty interval
    # Interval index: the smallest i with t <= 1 - r^i, i.e. i >= log(1 - t) / log(r). The tolerance keeps a point
    # that sits on an edge 1 - r^i (up to rounding) inside interval i, as the closed right end of the equation says.
    interval = math.ceil(math.log1p(-t) / math.log(ratio) - 1e-9)
    if interval <= start_interval:
        return 1.0
    return (1.0 / (2.0 * ratio)) ** (interval - start_interval)


def decay_multiplier(t: float, scheduler: str, esd_ratio: float = DEFAULT_ESD_RATIO,
                     esd_start_interval: int = DEFAULT_ESD_START_INTERVAL) -> float:
    """The post-warmup curve at post-warmup progress ``t`` in [0, 1]."""
    t = min(max(float(t), 0.0), 1.0)
    if scheduler == "esd":
        return esd_multiplier(t, esd_ratio, esd_start_interval)
    if scheduler == "linear":
        return 1.0 - t
    if scheduler == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if scheduler == "constant":
        return 1.0
    raise ValueError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")


def lr_multiplier(progress: float, scheduler: str, warmup_proportion: float, esd_ratio: float = DEFAULT_ESD_RATIO,
                  esd_start_interval: int = DEFAULT_ESD_START_INTERVAL) -> float:
    """Multiplier of the peak rate at ``progress`` in [0, 1] of the whole horizon: a linear ramp from 0 to 1 over
    the first ``warmup_proportion``, then ``scheduler``'s curve over the rest (rescaled to [0, 1])."""
    if not 0.0 <= warmup_proportion < 1.0:
        raise ValueError(f"warmup_proportion must be in [0, 1), got {warmup_proportion}")
    progress = min(max(float(progress), 0.0), 1.0)
    if progress < warmup_proportion:
        return progress / warmup_proportion
    t = (progress - warmup_proportion) / (1.0 - warmup_proportion)
    return decay_multiplier(t, scheduler, esd_ratio, esd_start_interval)


class PretrainLRScheduler:
    """Sets every parameter group's rate to ``base_lr * multiplier(progress())``.

    Speaks the protocol ``deepspeed.initialize(lr_scheduler=...)`` and checkpointing use: ``step()`` after each
    optimizer step, ``get_last_lr()``, ``get_lr()``, ``state_dict()`` and ``load_state_dict()``. It deliberately
    is not callable (DeepSpeed would take a callable for a scheduler factory). The position in the schedule lives
    with the trainer (``progress``), so resuming the trainer's step counter / elapsed time resumes the schedule.
    """

    def __init__(self, optimizer, multiplier: Callable[[float], float], progress: Callable[[], float]):
        self.optimizer = optimizer
        self.multiplier = multiplier
        self.progress = progress
        # "initial_lr" is torch's convention for the peak rate, so a scheduler built after a resume (when the
        # groups' "lr" already holds a decayed value) still knows the peak.
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_step = 0
        self._last_lr = self._apply()  # the very first optimizer step already uses the warmup rate

    def get_lr(self) -> list:
        """The rates the current progress asks for (not applied)."""
        factor = self.multiplier(self.progress())
        return [base * factor for base in self.base_lrs]

    def get_last_lr(self) -> list:
        """The rates last written into the optimizer."""
        return list(self._last_lr)

    def step(self) -> None:
        self.last_step += 1
        self._last_lr = self._apply()

    def _apply(self) -> list:
        lrs = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        return lrs

    def state_dict(self) -> dict:
        return {"base_lrs": list(self.base_lrs), "last_lr": list(self._last_lr), "last_step": self.last_step}

    def load_state_dict(self, state: dict) -> None:
        self.base_lrs = list(state["base_lrs"])
        self.last_step = int(state["last_step"])
        self._last_lr = list(state["last_lr"])
        for group, base, lr in zip(self.optimizer.param_groups, self.base_lrs, self._last_lr):
            group["initial_lr"] = base
            group["lr"] = lr


def plot_schedule(path, scheduler: Union[str, Sequence[str]], warmup_proportion: float,
                  esd_ratio: float = DEFAULT_ESD_RATIO, esd_start_interval: int = DEFAULT_ESD_START_INTERVAL,
                  peak_lr: float = 1.0, horizon: float = 1.0, xlabel: str = "fraction of training",
                  num_points: int = 2001) -> Path:
    """Draw the learning rate against progress (x from 0 to ``horizon``, e.g. steps or hours) as a PNG at ``path``.
    ``scheduler`` may be a list of names to compare curves on one plot. Written to a temporary name, then renamed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [scheduler] if isinstance(scheduler, str) else list(scheduler)
    xs = [i / (num_points - 1) for i in range(num_points)]
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in names:
        ys = [peak_lr * lr_multiplier(x, name, warmup_proportion, esd_ratio, esd_start_interval) for x in xs]
        ax.plot([x * horizon for x in xs], ys, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning rate" if peak_lr != 1.0 else "learning rate / peak")
    ax.set_title(f"warmup {warmup_proportion:g}" + (f", ESD r={esd_ratio:.4g} l={esd_start_interval}"
                                                    if "esd" in names else ""))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
    return path
