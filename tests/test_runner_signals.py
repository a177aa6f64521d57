"""A stage's log and processes when main() is signalled or killed: the stage's whole process group stops with it,
the log keeps every line shown so far and, when main() lives to write it, ends with the reason."""
import os
import signal
import time
from pathlib import Path

import pytest

from tests.runner_test_stages import start_main

LOG = Path("out") / "runs" / "sig" / "logs" / "sleeper.log"


def _running(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie waiting to be reaped has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _wait_for_log(tmp_path, main, text: str) -> None:
    log = tmp_path / LOG
    for _ in range(1200):
        if log.exists() and text in log.read_text():
            return
        assert main.poll() is None, (tmp_path / "main.out").read_text()
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {log}")


def _start_sleeper(tmp_path, stage_set="SLEEPING"):
    """main() running a sleeper stage; returns it and the PIDs of the stage and its child once it ticks."""
    main = start_main(tmp_path, stage_set, "main", "PRETRAIN.ID", "sig")
    _wait_for_log(tmp_path, main, "tick 3")
    return main, [int(pid) for pid in (tmp_path / "out" / "pids.txt").read_text().split()]


def _wait_until_gone(pids) -> list:
    for _ in range(600):
        if not any(map(_running, pids)):
            break
        time.sleep(0.05)
    return [pid for pid in pids if _running(pid)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_to_main_alone_stops_the_stage_and_its_child_and_the_log_says_why(tmp_path, sig):
    main, pids = _start_sleeper(tmp_path)
    os.kill(main.pid, sig)
    assert main.wait(timeout=60) == 128 + sig
    assert [pid for pid in pids if _running(pid)] == []  # gone before main() returned: it waited for them
    log = (tmp_path / LOG).read_text().splitlines()
    assert "tick 3" in log and f"stage interrupted by {sig.name} after" in log[-1]
    assert f"INTERRUPTED: stage 'sleeper' interrupted by {sig.name}" in (tmp_path / "main.out").read_text()


def test_ctrl_c_during_a_stage_with_worker_processes_leaves_no_semaphores_to_warn_about(tmp_path):
    main, pids = _start_sleeper(tmp_path, "POOLED")
    os.kill(main.pid, signal.SIGINT)
    assert main.wait(timeout=60) == 128 + signal.SIGINT
    assert _wait_until_gone(pids) == []
    assert "leaked semaphore" not in (tmp_path / "main.out").read_text()


def test_a_second_signal_kills_a_stage_that_ignores_the_first(tmp_path):
    main, pids = _start_sleeper(tmp_path, "STUBBORN")
    os.kill(main.pid, signal.SIGTERM)
    _wait_for_log(tmp_path, main, "ignoring SIGTERM")
    assert main.poll() is None  # still waiting for the stage
    os.kill(main.pid, signal.SIGTERM)
    assert main.wait(timeout=60) == 128 + signal.SIGTERM
    assert [pid for pid in pids if _running(pid)] == []


def test_sigkill_of_main_keeps_the_lines_logged_so_far_and_the_stage_dies_with_it(tmp_path):
    main, pids = _start_sleeper(tmp_path)
    os.kill(main.pid, signal.SIGKILL)
    main.wait(timeout=60)
    assert _wait_until_gone(pids) == []
    assert "tick 3" in (tmp_path / LOG).read_text().splitlines()


def test_a_stage_process_killed_by_sigkill_fails_the_run_and_its_child_is_stopped(tmp_path):
    main, (stage_pid, child_pid) = _start_sleeper(tmp_path)
    os.kill(stage_pid, signal.SIGKILL)
    assert main.wait(timeout=60) == 1
    assert not _running(child_pid)
    log = (tmp_path / LOG).read_text().splitlines()
    assert "tick 3" in log and "stage killed by SIGKILL after" in log[-1]
    assert "FAILED: stage 'sleeper' killed by SIGKILL" in (tmp_path / "main.out").read_text()
