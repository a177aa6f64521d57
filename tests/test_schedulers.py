"""Learning-rate schedules: ESD at its interval edges (hand-computed), warmup (as a proportion or in steps), each
decay curve against the original scripts' formulas, the registry, the scheduler object DeepSpeed drives.

The originals quoted below: 24h-BERT = IntelLabs/academic-budget-bert ``pretraining/schedules.py`` (``--curve
linear|exp``, ``--lr_schedule step|constant_step|time``); ExtremeBERT = extreme-bert/extreme-bert
``pretraining/customized_lr_curves.py`` (the ``--curve customized`` conf-file curves; ``pretraining/schedules.py``'s
``CustomizedCurve`` feeds them the step count after warmup and returns 0 once the step reaches the total)."""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pretraining.schedulers import (CURVE_PARAMETERS, CURVES, PretrainLRScheduler, esd_multiplier, lr_multiplier,
                                    warmup_fraction)

R = 2 ** -0.5


@pytest.mark.parametrize("t, expected", [
    (0.0, 1.0),
    (0.5, 1.0),
    (0.875, 1.0),                      # 1 - r^6 = 1 - 1/8: the last point at the peak (closed interval)
    (0.875 + 1e-6, R),                 # interval 7 starts: (1/(2r))^1 = 0.7071
    (1 - R ** 7, R),                   # 1 - r^7 = 0.91161: still interval 7
    (1 - R ** 7 + 1e-6, 0.5),          # interval 8: (1/(2r))^2 = 1/2
    (0.9375, 0.5),                     # 1 - r^8 = 1 - 1/16
    (0.94, 0.5 * R),                   # interval 9
    (1 - R ** 10, 0.25),               # 1 - r^10 = 0.96875 ends interval 10: (1/(2r))^4
    (0.97, 0.25 * R),
    (1.0, 0.0),
])
def test_esd_matches_hand_computed_values_at_interval_edges(t, expected):
    assert esd_multiplier(t) == pytest.approx(expected, rel=1e-9)


def test_esd_every_edge_belongs_to_the_interval_it_closes():
    for i in range(6, 30):
        edge = 1 - R ** i
        assert esd_multiplier(edge) == pytest.approx(R ** (i - 6) if i > 6 else 1.0)
        assert esd_multiplier(edge + (R ** i) * 1e-6) == pytest.approx(R ** (i - 5))


def test_esd_other_ratio_and_start_interval():
    # r = 1/2, l = 2: peak until 1 - 1/4 = 0.75, then (1/(2*0.5))^k = 1: a flat line, by the equation.
    assert esd_multiplier(0.9, esd_ratio=0.5, esd_start_interval=2) == pytest.approx(1.0)
    # r = 0.8, l = 1: peak until 0.2; t = 0.3 lies in (1 - 0.8, 1 - 0.64] -> i = 2 -> (1/1.6)^1.
    assert esd_multiplier(0.2, esd_ratio=0.8, esd_start_interval=1) == 1.0
    assert esd_multiplier(0.3, esd_ratio=0.8, esd_start_interval=1) == pytest.approx(1 / 1.6)
    assert esd_multiplier(0.4, esd_ratio=0.8, esd_start_interval=1) == pytest.approx(1 / 1.6 ** 2)  # 1-0.8^3 = 0.488


def test_esd_is_non_increasing():
    values = [esd_multiplier(i / 10000) for i in range(10001)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_esd_rejects_bad_parameters():
    with pytest.raises(ValueError, match="ratio"):
        esd_multiplier(0.5, esd_ratio=1.0)
    with pytest.raises(ValueError, match="start_interval"):
        esd_multiplier(0.5, esd_start_interval=-1)


@pytest.mark.parametrize("scheduler", ["esd", "linear", "cosine", "constant"])
def test_warmup_is_a_linear_ramp_to_the_peak(scheduler):
    assert lr_multiplier(0.0, scheduler, 0.1) == 0.0
    assert lr_multiplier(0.025, scheduler, 0.1) == pytest.approx(0.25)
    assert lr_multiplier(0.05, scheduler, 0.1) == pytest.approx(0.5)
    assert lr_multiplier(0.1, scheduler, 0.1) == pytest.approx(1.0)


def test_no_warmup_starts_at_the_peak():
    assert lr_multiplier(0.0, "linear", 0.0) == 1.0


def test_decay_curves_after_warmup():
    w = 0.2  # post-warmup progress t = (p - 0.2) / 0.8
    assert lr_multiplier(0.6, "linear", w) == pytest.approx(0.5)
    assert lr_multiplier(1.0, "linear", w) == pytest.approx(0.0)
    assert lr_multiplier(0.6, "cosine", w) == pytest.approx(0.5)
    assert lr_multiplier(0.4, "cosine", w) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    assert lr_multiplier(1.0, "cosine", w) == pytest.approx(0.0)
    assert lr_multiplier(0.99, "constant", w) == 1.0
    assert lr_multiplier(0.2 + 0.8 * 0.875, "esd", w) == pytest.approx(1.0)
    assert lr_multiplier(0.2 + 0.8 * 0.9, "esd", w) == pytest.approx(R)
    assert lr_multiplier(0.2 + 0.8 * 0.875, "esd", w, esd_start_interval=5) == pytest.approx(R)  # l=5: edge of i=6
    with pytest.raises(ValueError, match="unknown curve 'stepped'; choose one of esd, linear"):
        lr_multiplier(0.5, "stepped", w)


def test_registry_holds_our_curves_and_those_of_the_original_scripts():
    assert list(CURVES) == ["esd", "linear", "cosine", "constant", "exp", "inverse_time", "poly", "step"]
    assert all(callable(function) for function in CURVES.values())


def test_curve_parameters_default_to_the_originals():
    assert CURVE_PARAMETERS["exp"] == {"decay_rate": 0.99, "decay_step": 1000}  # 24h-BERT args/scheduler_args.py
    assert CURVE_PARAMETERS["inverse_time"] == {"inverse_time_lambda": 3.33}  # conf/lr-scheduler_inverse-time-decay
    assert CURVE_PARAMETERS["step"] == {"step_decay_rate": 10.0, "step_num_intervals": 3}  # lr-scheduler_step-decay
    assert CURVE_PARAMETERS["poly"] == {"poly_power": 1.0}  # ExtremeBERT has no default for its exponent
    assert CURVE_PARAMETERS["esd"] == {"esd_ratio": R, "esd_start_interval": 6}  # pretrain_search.sh: 1/1.4142, cr_k 6
    assert CURVE_PARAMETERS["linear"] == CURVE_PARAMETERS["cosine"] == CURVE_PARAMETERS["constant"] == {}


def test_linear_matches_24h_bert_linear_curve_with_either_warmup():
    def original(current, total, total_warmup):  # BaseScheduler/StepScheduler with LinearCurve
        if current < total_warmup:
            return current / total_warmup
        return max(0.0, total - current) / max(1.0, total - total_warmup)

    for current in (0, 30, 59, 60, 61, 500, 999, 1000):
        assert lr_multiplier(current / 1000, "linear", 0.06) == pytest.approx(original(current, 1000, 60))
        # --lr_schedule constant_step (FixedWarmupScheduler): warmup = --num_warmup_steps, the proportion ignored
        assert lr_multiplier(current / 1000, "linear", 0.5, num_warmup_steps=100, horizon=1000) == \
            pytest.approx(original(current, 1000, 100))


def test_exp_matches_24h_bert_exp_curve_with_its_quadratic_warmup():
    def original(current, total_warmup, decay_rate=0.99, decay_step=1000):  # ExpCurve
        if current < total_warmup:
            return (current / total_warmup) ** 2
        return decay_rate ** ((current - total_warmup) / decay_step)

    total = 23000  # warmup 0.06 * 23000 = 1380 steps
    for current in (0, 690, 1379, 1380, 3380, 5000, 23000):
        assert lr_multiplier(current / total, "exp", 0.06, horizon=total) == pytest.approx(original(current, 1380))
        assert lr_multiplier(current / total, "exp", 0.06, horizon=total, decay_rate=0.5, decay_step=100) == \
            pytest.approx(original(current, 1380, 0.5, 100))
    assert lr_multiplier(690 / total, "exp", 0.06, horizon=total) == pytest.approx(0.25)
    assert lr_multiplier(3380 / total, "exp", 0.06, horizon=total) == pytest.approx(0.9801)  # two decay steps
    # TimeScheduler: position and total in hours, so decay_step counts hours: 3 h after a 1.44 h warmup of 24 h
    assert lr_multiplier(4.44 / 24, "exp", 0.06, horizon=24, decay_rate=0.5, decay_step=1) == pytest.approx(0.125)


def test_inverse_time_matches_extremebert_inverse_time_decay():
    def original(current, total, total_warmup, init_lr, lambda_=3.33):
        if current >= total:
            return 0.0
        t = current - total_warmup
        return init_lr / (1 + init_lr * t * lambda_) / init_lr

    for current in (600, 1000, 1600, 5000, 9999, 10000):
        assert lr_multiplier(current / 10000, "inverse_time", 0.06, horizon=10000, peak_lr=1e-3) == \
            pytest.approx(original(current, 10000, 600, 1e-3))
        assert lr_multiplier(current / 10000, "inverse_time", 0.06, horizon=10000, peak_lr=1e-2,
                             inverse_time_lambda=0.5) == pytest.approx(original(current, 10000, 600, 1e-2, 0.5))
    assert lr_multiplier(0.16, "inverse_time", 0.06, horizon=10000, peak_lr=1e-3) == pytest.approx(1 / 4.33)


def test_poly_matches_extremebert_poly_remain_time_decay():
    def original(current, total, total_warmup, decay_rate):
        if current >= total:
            return 0.0
        t, num_iter = current - total_warmup, total - total_warmup  # pretrain_search.sh: num_iter after warmup
        return (1 - t / num_iter) ** decay_rate

    for current in (100, 250, 550, 900, 999, 1000):
        for power in (0.5, 1.0, 2.0):
            assert lr_multiplier(current / 1000, "poly", 0.1, poly_power=power) == \
                pytest.approx(original(current, 1000, 100, power))
    assert lr_multiplier(0.55, "poly", 0.1, poly_power=2.0) == pytest.approx(0.25)
    assert lr_multiplier(0.55, "poly", 0.1) == lr_multiplier(0.55, "linear", 0.1)


def test_step_matches_extremebert_step_decay():
    def original(current, total, total_warmup, decay_rate=10.0, num_interval=3):
        if current >= total:
            return 0.0
        t, num_iter = current - total_warmup, total - total_warmup
        return (1 / decay_rate) ** int(t / (num_iter / num_interval))

    for current in (100, 399, 400, 401, 699, 700, 999, 1000):
        assert lr_multiplier(current / 1000, "step", 0.1) == pytest.approx(original(current, 1000, 100))
        assert lr_multiplier(current / 1000, "step", 0.1, step_decay_rate=2.0, step_num_intervals=4) == \
            pytest.approx(original(current, 1000, 100, 2.0, 4))
    assert [lr_multiplier(p, "step", 0.1) for p in (0.399, 0.4, 0.7, 0.999)] == pytest.approx([1, 0.1, 0.01, 0.01])


@pytest.mark.parametrize("curve", list(CURVES))
def test_warmup_in_steps_equals_the_same_warmup_as_a_proportion(curve):
    for step in range(0, 2001, 25):
        by_steps = lr_multiplier(step / 2000, curve, num_warmup_steps=120, horizon=2000, peak_lr=1e-3)
        assert by_steps == pytest.approx(lr_multiplier(step / 2000, curve, 0.06, horizon=2000, peak_lr=1e-3))


def test_warmup_fraction_from_a_proportion_or_from_steps():
    assert warmup_fraction(0.06) == 0.06
    assert warmup_fraction(0.06, num_warmup_steps=1000, num_steps=23000) == pytest.approx(1000 / 23000)
    with pytest.raises(ValueError, match="num_warmup_steps needs the number of steps"):
        warmup_fraction(num_warmup_steps=1000)
    with pytest.raises(ValueError, match=r"in \[0, 1\) of the horizon, got 1 \(100 of 100 steps\)"):
        warmup_fraction(num_warmup_steps=100, num_steps=100)


@pytest.mark.parametrize("curve", list(CURVES))
def test_every_curve_rises_through_warmup_then_never_rises(curve):
    values = [lr_multiplier(i / 1000, curve, 0.1, horizon=5000, peak_lr=1e-3) for i in range(1001)]
    warmup, decay = values[:101], values[100:]
    assert all(a <= b for a, b in zip(warmup, warmup[1:])) and warmup[0] == 0.0 and warmup[-1] == 1.0
    assert all(a >= b for a, b in zip(decay, decay[1:]))


def test_one_call_site_may_pass_every_curve_setting():
    settings = {"decay_rate": 0.5, "decay_step": 10, "inverse_time_lambda": 1.0, "poly_power": 3.0,
                "step_decay_rate": 4.0, "step_num_intervals": 2}
    assert lr_multiplier(0.5, "linear", 0.0, horizon=100, peak_lr=1.0, **settings) == 0.5
    assert lr_multiplier(0.5, "poly", 0.0, horizon=100, peak_lr=1.0, **settings) == pytest.approx(0.125)
    assert lr_multiplier(0.5, "step", 0.0, horizon=100, peak_lr=1.0, **settings) == pytest.approx(0.25)


def test_missing_context_and_bad_curve_settings_are_refused():
    with pytest.raises(ValueError, match="curve 'exp' counts in steps: give horizon"):
        lr_multiplier(0.5, "exp", 0.1)
    with pytest.raises(ValueError, match="curve 'inverse_time' depends on the peak rate itself: give peak_lr"):
        lr_multiplier(0.5, "inverse_time", 0.1, horizon=100)
    with pytest.raises(ValueError, match="unknown curve parameter.s. step_decay;"):
        lr_multiplier(0.5, "step", 0.1, step_decay=3)
    with pytest.raises(ValueError, match="step_decay_rate must be > 1"):
        lr_multiplier(0.5, "step", 0.1, step_decay_rate=0.5)
    with pytest.raises(ValueError, match="decay_rate must be in"):
        lr_multiplier(0.5, "exp", 0.1, horizon=100, decay_rate=1.5)


def test_schedulers_import_without_torch_so_a_config_table_can_read_the_curves():
    code = "import sys, pretraining.schedulers; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1]).returncode == 0


def _optimizer(lr=1e-3):
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    return torch.optim.AdamW([{"params": params[:1]}, {"params": params[1:], "lr": 2 * lr}], lr=lr)


def test_scheduler_follows_the_progress_it_is_given():
    optimizer = _optimizer()
    state = {"step": 0}
    scheduler = PretrainLRScheduler(optimizer, lambda p: lr_multiplier(p, "linear", 0.5), lambda: state["step"] / 10)
    assert [g["lr"] for g in optimizer.param_groups] == [0.0, 0.0]  # the first step already uses warmup
    for _ in range(3):
        state["step"] += 1
        scheduler.step()
    assert scheduler.get_last_lr() == pytest.approx([0.6e-3, 1.2e-3])
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.6e-3, 1.2e-3])
    state["step"] = 10
    scheduler.step()
    assert scheduler.get_last_lr() == pytest.approx([0.0, 0.0])


def test_scheduler_state_round_trip_restores_peak_and_position():
    optimizer = _optimizer()
    progress = {"value": 0.7}
    scheduler = PretrainLRScheduler(optimizer, lambda p: lr_multiplier(p, "linear", 0.0), lambda: progress["value"])
    scheduler.step()
    state = scheduler.state_dict()

    fresh_optimizer = _optimizer(lr=5.0)  # a different configured peak must be overridden by the checkpoint
    fresh = PretrainLRScheduler(fresh_optimizer, lambda p: lr_multiplier(p, "linear", 0.0), lambda: progress["value"])
    fresh.load_state_dict(state)
    assert fresh.last_step == 1
    assert [g["lr"] for g in fresh_optimizer.param_groups] == pytest.approx([0.3e-3, 0.6e-3])
    progress["value"] = 0.9
    fresh.step()
    assert fresh.get_last_lr() == pytest.approx([0.1e-3, 0.2e-3])


def test_scheduler_is_not_callable_so_deepspeed_uses_it_as_is():
    scheduler = PretrainLRScheduler(_optimizer(), lambda p: 1.0, lambda: 0.0)
    assert not callable(scheduler)

