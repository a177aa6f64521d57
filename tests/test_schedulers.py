"""Learning-rate schedules: ESD at its interval edges (hand-computed), warmup, each decay curve, the scheduler
object DeepSpeed drives, and the plot."""
import math

import pytest
import torch

from pretraining.schedulers import PretrainLRScheduler, esd_multiplier, lr_multiplier, plot_schedule

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
    assert esd_multiplier(0.9, ratio=0.5, start_interval=2) == pytest.approx(1.0)
    # r = 0.8, l = 1: peak until 0.2; t = 0.3 lies in (1 - 0.8, 1 - 0.64] -> i = 2 -> (1/1.6)^1.
    assert esd_multiplier(0.2, ratio=0.8, start_interval=1) == 1.0
    assert esd_multiplier(0.3, ratio=0.8, start_interval=1) == pytest.approx(1 / 1.6)
    assert esd_multiplier(0.4, ratio=0.8, start_interval=1) == pytest.approx(1 / 1.6 ** 2)  # 1-0.8^3 = 0.488


def test_esd_is_non_increasing():
    values = [esd_multiplier(i / 10000) for i in range(10001)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_esd_rejects_bad_parameters():
    with pytest.raises(ValueError, match="ratio"):
        esd_multiplier(0.5, ratio=1.0)
    with pytest.raises(ValueError, match="start_interval"):
        esd_multiplier(0.5, start_interval=-1)


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
    with pytest.raises(ValueError, match="unknown scheduler"):
        lr_multiplier(0.5, "step", w)


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


def test_plot_schedule_writes_a_png(tmp_path):
    path = plot_schedule(tmp_path / "plots" / "lr.png", ["esd", "linear", "cosine", "constant"], 0.06)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["lr.png"]
