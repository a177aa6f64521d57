"""Two runs at once on one OUTPUT_ROOT, as two real main() processes: they take turns on a folder instead of writing
it together. The stage that holds the lock waits for a file the test creates, so the other run's wait is certain."""
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.runner_test_stages import REPO_ROOT, start_main
from tests.test_dataset_fixtures import write_corpus
from tests.test_dataset_stage import _config as dataset_only_config


def _wait_for_text(path: Path, text: str, process) -> None:
    for _ in range(1200):
        if path.exists() and text in path.read_text():
            return
        assert process.poll() is None, path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


def _finish(tmp_path, *processes) -> list:
    (tmp_path / "out" / "go").touch()
    return [process.wait(timeout=120) for process in processes]


def _calls(tmp_path) -> list:
    return (tmp_path / "out" / "calls.log").read_text().split()


def _start_holder(tmp_path, *opts):
    """A run that holds the run folder and the shared folder until the test says go."""
    first = start_main(tmp_path, "SHARED", "first", *opts)
    _wait_for_text(tmp_path / "first.out", "stage shared", first)
    for _ in range(1200):
        if (tmp_path / "out" / "building").exists():
            return first
        time.sleep(0.05)
    raise AssertionError("the shared stage never started")


def test_a_second_run_of_the_same_config_waits_then_finds_every_stage_complete(tmp_path):
    first = _start_holder(tmp_path, "PRETRAIN.ID", "same")
    second = start_main(tmp_path, "SHARED", "second", "PRETRAIN.ID", "same")
    _wait_for_text(tmp_path / "second.out", f"waiting for {tmp_path / 'out' / 'runs' / 'same'}: in use by PID "
                                            f"{first.pid} on host {socket.gethostname()}", second)
    assert _finish(tmp_path, first, second) == [0, 0]
    assert _calls(tmp_path) == ["shared", "user:same"]  # each stage ran once, not once per run
    out = (tmp_path / "second.out").read_text()
    assert "[skip] shared" in out and "[skip] user" in out


def test_no_wait_refuses_at_once_naming_the_holders_pid_and_host(tmp_path):
    first = _start_holder(tmp_path, "PRETRAIN.ID", "same")
    second = start_main(tmp_path, "SHARED", "second", "PRETRAIN.ID", "same", args=["--no-wait"])
    assert second.wait(timeout=60) == 4
    lines = (tmp_path / "second.out").read_text().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'out' / 'runs' / 'same'} is in use by PID "
                                                   f"{first.pid} on host {socket.gethostname()}")
    assert _finish(tmp_path, first) == [0]
    assert _calls(tmp_path) == ["shared", "user:same"]


def test_two_configs_sharing_a_folder_build_it_once_then_both_use_it(tmp_path):
    first = _start_holder(tmp_path, "PRETRAIN.ID", "a")
    second = start_main(tmp_path, "SHARED", "second", "PRETRAIN.ID", "b")
    _wait_for_text(tmp_path / "second.out", f"waiting for {tmp_path / 'out' / 'shared'}: in use by PID {first.pid}",
                   second)
    assert _finish(tmp_path, first, second) == [0, 0]
    assert sorted(_calls(tmp_path)) == ["shared", "user:a", "user:b"]  # built by one, read by both
    assert "[skip] shared" in (tmp_path / "second.out").read_text()
    for run in ("a", "b"):
        assert (tmp_path / "out" / "runs" / run / "user" / "output.txt").exists()


def test_two_real_main_py_runs_of_configs_sharing_a_dataset_started_together_write_it_once(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", files=2, articles_per_file=10)
    commands = []
    for run in ("a", "b"):  # two runs (two run folders) of one dataset
        config = tmp_path / f"{run}.yaml"
        config.write_text(dataset_only_config(tmp_path, corpus, "SYSTEM.NUM_GPUS", "0", "PRETRAIN.ID", run).dump())
        commands.append([sys.executable, str(REPO_ROOT / "main.py"), "--config", str(config)])
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
            for command in commands]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sum("[done] dataset" in out for out in outputs) == 1
    assert sum("[skip] dataset" in out for out in outputs) == 1
    (dataset,) = (tmp_path / "runs" / "datasets").iterdir()
    text_dir = dataset / "text_shards"
    articles = [a for path in text_dir.glob("*.txt") for a in path.read_text().split("\n\n") if a.strip()]
    assert len(articles) == 20 == len(set(articles))  # every article once: not twice, not lost
