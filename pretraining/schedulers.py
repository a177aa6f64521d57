"""Learning-rate schedules for pretraining: a warmup, then one of the decay curves in ``CURVES``.

A schedule is a multiplier of the peak rate as a function of the *progress* in [0, 1] over the whole horizon: the
step budget (step / num_steps) or the time budget (elapsed / total_training_time); the trainer hands
``PretrainLRScheduler`` a ``progress()`` callable, so one scheduler serves both. No torch or DeepSpeed import, so
a config table can read ``CURVES`` cheaply.

The curves: ESD (the ExtremeBERT paper's), linear, cosine and constant, and those of the original scripts:
24h-BERT's ``--curve exp`` and ExtremeBERT's conf-file curves (inverse-time, polynomial, step decay). Each is a
function of the post-warmup progress ``t``; those that count in steps (exp, inverse_time) also take
``decay_horizon``, the post-warmup horizon in the horizon's unit (steps, or hours, as the originals count then), so
that ``t * decay_horizon`` is the originals' step count. The originals' ``--lr_schedule constant_step`` (a warmup of
``--num_warmup_steps``, default 1000, instead of ``--warmup_proportion``) is ``warmup_fraction``'s second form.
"""
import inspect
import math
from typing import Callable, Optional

from pipeline.defaults import LR_CURVES

DEFAULT_ESD_RATIO = 2 ** -0.5
DEFAULT_ESD_START_INTERVAL = 6


def esd_multiplier(t: float, *, esd_ratio: float = DEFAULT_ESD_RATIO,
                   esd_start_interval: int = DEFAULT_ESD_START_INTERVAL) -> float:
    r"""Elastic Step Decay, the ExtremeBERT paper's eq. (1), as a multiplier of the peak rate :math:`\eta_0`.

    With ``t`` the post-warmup progress in [0, 1] (fraction of the post-warmup horizon T), r = ``esd_ratio`` and
    l = ``esd_start_interval``::

        eta(t) = eta_0                              for t in [0, 1 - r^l]
        eta(t) = eta_0 * (1 / (2 r))^(i - l)        for t in (1 - r^(i-1), 1 - r^i],  i >= l + 1

    Interval i therefore ends at 1 - r^i: the rate stays at its peak for the first 1 - r^l of the horizon
    (87.5% with the defaults r = 2^(-1/2), l = 6), then drops by a factor 1/(2r) (= r = 0.7071 with the defaults)
    at each interval edge while the intervals shrink geometrically by r towards t = 1, where the rate reaches 0.
    """
    if not 0.0 < esd_ratio < 1.0:
        raise ValueError(f"ESD ratio must be in (0, 1), got {esd_ratio}")
    if esd_start_interval < 0:
        raise ValueError(f"ESD start_interval must be >= 0, got {esd_start_interval}")
    t = min(max(float(t), 0.0), 1.0)
    if t >= 1.0:
        return 0.0  # the limit of the geometric decay: the horizon's end has an empty interval
    # Interval index: the smallest i with t <= 1 - r^i, i.e. i >= log(1 - t) / log(r). The tolerance keeps a point
    # that sits on an edge 1 - r^i (up to rounding) inside interval i, as the closed right end of the equation says.
    interval = math.ceil(math.log1p(-t) / math.log(esd_ratio) - 1e-9)
    if interval <= esd_start_interval:
        return 1.0
    return (1.0 / (2.0 * esd_ratio)) ** (interval - esd_start_interval)


def exp_multiplier(t: float, *, decay_horizon: float, decay_rate: float = 0.99, decay_step: float = 1000) -> float:
    """24h-BERT's ``--curve exp`` (``ExpCurve``): the rate shrinks by ``decay_rate`` every ``decay_step`` units after
    warmup, continuously: ``decay_rate ** (s / decay_step)`` with ``s = t * decay_horizon``. It never reaches 0 (the
    run simply ends), and its warmup is quadratic (``WARMUP_EXPONENT``)."""
    if not 0.0 < decay_rate <= 1.0:
        raise ValueError(f"decay_rate must be in (0, 1], got {decay_rate}")
    if decay_step <= 0:
        raise ValueError(f"decay_step must be > 0, got {decay_step}")
    return decay_rate ** (t * decay_horizon / decay_step)


def inverse_time_multiplier(t: float, *, decay_horizon: float, peak_lr: float,
                            inverse_time_lambda: float = 3.33) -> float:
    """ExtremeBERT's ``inverse_time_decay``: ``eta = eta_0 / (1 + eta_0 * lambda * s)`` with ``s = t * decay_horizon``
    steps after warmup, so the multiplier depends on the peak rate ``eta_0`` itself. 0 at the end of the horizon,
    as for all of ExtremeBERT's conf-file curves (``CustomizedCurve``)."""
    if inverse_time_lambda < 0:
        raise ValueError(f"inverse_time_lambda must be >= 0, got {inverse_time_lambda}")
    if t >= 1.0:
        return 0.0
    return 1.0 / (1.0 + peak_lr * inverse_time_lambda * t * decay_horizon)


def poly_multiplier(t: float, *, poly_power: float = 1.0) -> float:
    """ExtremeBERT's ``poly_remain_time_decay``: ``eta = eta_0 * (1 - t) ** C``; C is its conf key ``decay_rate``,
    which has no default there (1.0 here: the linear curve, as in transformers' polynomial schedule)."""
    if poly_power < 0:
        raise ValueError(f"poly_power must be >= 0, got {poly_power}")
    if t >= 1.0:
        return 0.0
    return (1.0 - t) ** poly_power


def step_multiplier(t: float, *, step_decay_rate: float = 10.0, step_num_intervals: int = 3) -> float:
    """ExtremeBERT's ``step_decay``: the post-warmup horizon cut into ``step_num_intervals`` equal intervals, the rate
    divided by ``step_decay_rate`` at the start of each: ``eta_0 / rate ** floor(t * n)`` (defaults from its
    ``conf/lr-scheduler_step-decay.conf``: 3 intervals, / 10 each). 0 at the end of the horizon."""
    if step_decay_rate <= 1.0:
        raise ValueError(f"step_decay_rate must be > 1, got {step_decay_rate}")
    if step_num_intervals < 1:
        raise ValueError(f"step_num_intervals must be >= 1, got {step_num_intervals}")
    if t >= 1.0:
        return 0.0
    # An edge k/n computed as steps / horizon may land a rounding error below k/n: it belongs to interval k.
    return step_decay_rate ** -math.floor(t * step_num_intervals + 1e-9)


CURVES: dict = {
    "esd": esd_multiplier,
    "linear": lambda t: 1.0 - t,  # 24h-BERT's LinearCurve: its (total - current) / (total - total_warmup) is 1 - t
    "cosine": lambda t: 0.5 * (1.0 + math.cos(math.pi * t)),  # half a cosine period from the peak down to 0
    "constant": lambda t: 1.0,
    "exp": exp_multiplier,
    "inverse_time": inverse_time_multiplier,
    "poly": poly_multiplier,
    "step": step_multiplier,
}
if tuple(CURVES) != LR_CURVES:  # the names are declared once, with the PRETRAIN.SCHEDULER setting
    raise ImportError(f"pretraining.schedulers implements {tuple(CURVES)} but the settings declare {LR_CURVES}")
# What a curve may need besides its own parameters (the caller knows these; the config does not set them), and
# what to say when it is missing.
_CONTEXT = {"decay_horizon": "counts in steps: give horizon (the horizon's length in steps, or hours)",
            "peak_lr": "depends on the peak rate itself: give peak_lr"}
# 24h-BERT's ExpCurve warms up along the square of the warmup progress; every other curve (theirs and ours) linearly.
WARMUP_EXPONENT = {"exp": 2}


def _keywords(function) -> dict:
    return {p.name: p.default for p in inspect.signature(function).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


# Each curve's own parameters and their defaults, read off the functions above so that they are written once.
CURVE_PARAMETERS = {name: {k: v for k, v in _keywords(f).items() if k not in _CONTEXT} for name, f in CURVES.items()}
_ALL_PARAMETERS = {k for params in CURVE_PARAMETERS.values() for k in params}


def warmup_fraction(warmup_proportion: float = 0.0, num_warmup_steps: Optional[int] = None,
                    num_steps: Optional[int] = None) -> float:
    """The warmup as a fraction of the horizon: ``warmup_proportion``, or ``num_warmup_steps`` out of a step horizon
    of ``num_steps`` (the originals' ``--lr_schedule constant_step``), which then wins over the proportion."""
    if num_warmup_steps is None:
        fraction = warmup_proportion
    elif not num_steps or num_steps <= 0:
        raise ValueError("num_warmup_steps needs the number of steps of the horizon (num_steps)")
    else:
        fraction = num_warmup_steps / num_steps
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the warmup must be a fraction in [0, 1) of the horizon, got {fraction:g}"
                         + (f" ({num_warmup_steps} of {num_steps} steps)" if num_warmup_steps is not None else ""))
    return fraction


def lr_multiplier(progress: float, curve: str, warmup_proportion: float = 0.0, *,
                  num_warmup_steps: Optional[int] = None, horizon: Optional[float] = None,
                  peak_lr: Optional[float] = None, **curve_params) -> float:
    """Multiplier of the peak rate at ``progress`` in [0, 1] of the whole horizon: a ramp from 0 to 1 over the warmup
    (linear; quadratic for ``exp``), then ``curve`` over the rest (rescaled to [0, 1]).

    ``horizon`` is the whole horizon's length in its unit (``max_steps``, or hours for a time budget): needed with
    ``num_warmup_steps`` (a step horizon) and by the curves that count in steps. ``peak_lr`` is needed by
    ``inverse_time``. ``curve_params`` may hold any curve's parameters (``CURVE_PARAMETERS``): those of other curves
    are ignored, so one call site can pass every setting.
    """
    if curve not in CURVES:
        raise ValueError(f"unknown curve {curve!r}; choose one of {', '.join(CURVES)}")
    unknown = sorted(set(curve_params) - _ALL_PARAMETERS)
    if unknown:
        raise ValueError(f"unknown curve parameter(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(_ALL_PARAMETERS))}")
    warmup = warmup_fraction(warmup_proportion, num_warmup_steps, horizon)
    progress = min(max(float(progress), 0.0), 1.0)
    if progress < warmup:
        return (progress / warmup) ** WARMUP_EXPONENT.get(curve, 1)
    function = CURVES[curve]
    accepted = _keywords(function)
    kwargs = {k: v for k, v in curve_params.items() if k in accepted}
    context = {"decay_horizon": None if horizon is None else horizon * (1.0 - warmup), "peak_lr": peak_lr}
    for name, value in context.items():
        if name in accepted:
            if value is None:
                raise ValueError(f"curve {curve!r} {_CONTEXT[name]}")
            kwargs[name] = value
    return function(min(max((progress - warmup) / (1.0 - warmup), 0.0), 1.0), **kwargs)


class PretrainLRScheduler:
    """Sets every parameter group's rate to ``base_lr * multiplier(progress())`` at construction and after each
    optimizer step (``step()``), with ``get_last_lr()``, ``state_dict()`` and ``load_state_dict()``. It is not
    callable: DeepSpeed takes a callable for a scheduler factory. The position in the schedule lives with the
    trainer (``progress``), so resuming the trainer's step counter / elapsed time resumes the schedule.
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
        self._apply()  # the very first optimizer step already uses the warmup rate

    def get_last_lr(self) -> list:
        """The rates last written into the optimizer."""
        return list(self._last_lr)

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def _apply(self) -> None:
        factor = self.multiplier(self.progress())
        self._last_lr = [base * factor for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def state_dict(self) -> dict:
        return {"base_lrs": list(self.base_lrs), "last_lr": list(self._last_lr), "last_step": self.last_step}

    def load_state_dict(self, state: dict) -> None:
        """Restore the peak rates and the step counter; the rate itself is recomputed from the current progress,
        which equals the saved rate on a plain resume and follows the new curve when the horizon was raised."""
        self.base_lrs = list(state["base_lrs"])
        self.last_step = int(state["last_step"])
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = base
        self._apply()
