"""The edges of the disk: no room for a stage's estimate, a read-only output root, a full disk inside a stage or
under the log file, a checkpoint that cannot be written. Each ends in one line and exit code 3, not a traceback;
the log survives a full disk; no partial checkpoint stays behind."""
import errno
import os
import subprocess
from pathlib import Path

import pytest

import main
from orchestration.runner import run_pipeline
from orchestration.stages import load_config
from pipeline.disk import DiskError
from tests.runner_test_stages import DISK_FULL, TWO_STAGES, config_opts


def _main(tmp_path, stages, *opts) -> int:
    config = tmp_path / "empty.yaml"
    config.write_text("")
    return main.main(["--config", str(config), "--opts", *config_opts(tmp_path, *opts)], stages=stages)


def _calls(tmp_path) -> list:
    calls = tmp_path / "out" / "calls.log"
    return calls.read_text().split() if calls.exists() else []


def test_a_stage_needing_more_room_than_the_disk_has_stops_before_it_starts(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "want_the_moon").touch()  # the test stages then estimate 10**18 bytes
    assert _main(tmp_path, TWO_STAGES, "PRETRAIN.ID", "moon") == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'out' / 'runs' / 'moon'} has ")
    assert err[0].split(" free but stage 'first' needs about ")[1].startswith("1 EB")
    assert _calls(tmp_path) == []


def test_no_space_left_inside_a_stage_is_one_line_and_exit_code_3(tmp_path, capsys):
    assert _main(tmp_path, DISK_FULL, "PRETRAIN.ID", "full") == 3
    captured = capsys.readouterr()
    assert f"error: {tmp_path / 'out' / 'big.bin'}: no space left on the device; free some space" in captured.out
    assert "FAILED: stage 'disk_full' failed with exit code 3" in captured.err
    log = (tmp_path / "out" / "runs" / "full" / "logs" / "disk_full.log").read_text()
    assert "no space left on the device" in log and "Traceback" not in log


@pytest.fixture
def read_only_output_root(tmp_path):
    """``tmp_path/out`` made read-only: by its permissions for a user; for root, whom permissions do not stop, by
    mounting a read-only file system there (skipped where that is not allowed)."""
    root = tmp_path / "out"
    root.mkdir()
    if os.geteuid() != 0:
        root.chmod(0o555)
        yield root
        root.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(root)],
                      capture_output=True).returncode != 0:
        pytest.skip("running as root, where permissions do not apply, and mounting a read-only tmpfs failed")
    yield root
    subprocess.run(["umount", str(root)], check=True)


def test_a_read_only_output_root_is_one_line_naming_it_and_exit_code_3(tmp_path, read_only_output_root, capsys):
    assert _main(tmp_path, TWO_STAGES, "PRETRAIN.ID", "ro") == 3
    err = capsys.readouterr().err.strip().splitlines()
    reason = "permission denied" if os.geteuid() else "read-only file system"
    assert err == [f"error: {read_only_output_root / 'runs' / 'ro'} is not writable ({reason}): set "
                   f"SYSTEM.OUTPUT_ROOT to a writable folder, or fix its permissions"]


def test_an_output_root_under_a_regular_file_is_one_line_naming_the_file_and_exit_code_3(tmp_path, capsys):
    (tmp_path / "notes").write_text("a file where a folder should be")
    assert _main(tmp_path, TWO_STAGES, "PRETRAIN.ID", "x", "SYSTEM.OUTPUT_ROOT", str(tmp_path / "notes" / "out")) == 3
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tmp_path / 'notes' / 'out' / 'runs' / 'x'} cannot be created ({tmp_path / 'notes'} is a file, not a"
        f" folder): set SYSTEM.OUTPUT_ROOT to a writable folder"]


def test_a_full_disk_under_the_log_file_turns_the_log_off_and_the_stage_goes_on(tmp_path, capsys):
    cfg = load_config(None, config_opts(tmp_path, "PRETRAIN.ID", "log"))
    logs = tmp_path / "out" / "runs" / "log" / "logs"
    logs.mkdir(parents=True)
    (logs / "first.log").symlink_to("/dev/full")  # every write to it fails with ENOSPC
    assert run_pipeline(cfg, stages=TWO_STAGES) == 0
    captured = capsys.readouterr()
    assert "first: wrote" in captured.out
    assert f"warning: stopped writing {logs / 'first.log'} (No space left on device)" in captured.err
    assert "second: wrote" in (logs / "second.log").read_text()


def test_a_checkpoint_save_that_hits_a_full_disk_leaves_no_partial_folder(one_rank_group, tmp_path):
    import deepspeed
    import torch

    from pretraining.checkpointing import TrainState, checkpoints_dir, latest_tag, save_checkpoint

    model = torch.nn.Linear(8, 8)
    engine, *_ = deepspeed.initialize(model=model, optimizer=torch.optim.AdamW(model.parameters()),
                                      config={"train_micro_batch_size_per_gpu": 1, "train_batch_size": 1})
    assert save_checkpoint(engine, tmp_path, TrainState(step=1), keep=2) == "step00000001"
    real_save = engine.checkpoint_engine.save

    def save_then_run_out_of_space(state_dict, path):
        real_save(state_dict, path)  # part of the checkpoint reaches the disk, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device", path)

    engine.checkpoint_engine.save = save_then_run_out_of_space
    with pytest.raises(DiskError, match=r"checkpoint .*step00000002 failed with .* left on the disk \(\[Errno 28\]"):
        save_checkpoint(engine, tmp_path, TrainState(step=2), keep=2)
    assert sorted(p.name for p in checkpoints_dir(tmp_path).iterdir()) == ["latest_step", "step00000001"]
    assert latest_tag(checkpoints_dir(tmp_path)) == "step00000001"
    assert Path(checkpoints_dir(tmp_path) / "step00000001").is_dir()
