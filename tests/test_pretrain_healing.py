"""Damaged pretraining outputs heal from what is whole: a truncated checkpoint is set aside and the run resumes from
the one before; a lost pointer is rebuilt from the complete checkpoints (none is pruned as a leftover); a damaged
``final_model/`` is found (sizes on every run, hashes under --verify) and exported again from the newest checkpoint
without training. One real run (in this process) is copied for each case."""
import os
import shutil
from pathlib import Path

import pytest

from orchestration.runner import plan, run_pipeline
from orchestration.stages import STAGES
from pipeline import layout
from pipeline.manifest import file_sha256, read_manifest
from pretraining.arguments import parse_arguments
from pretraining.checkpointing import POINTER_NAME, latest_tag, prune
from pretraining.stage import CONFIG_FILE, pretrain_status
from tests.pretrain_fixtures import checkpoint_contents
from tests.test_pretrain_stage import tiny_config

FIRST_BATCH = "first training batch of this run"  # printed once a run trains a step
PRETRAIN_ONLY = [stage for stage in STAGES if stage.name == "pretrain"]


def train_with_config(config_file):
    """What the stage's script does, in this process: train on the pipeline config's settings and paths."""
    from pretraining.trainer import train

    return train(*parse_arguments(["--config", str(config_file)]))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, one_rank_group):
    """A finished 6-step run laid out as the pipeline's (checkpoints at steps 3 and 6, final_model, manifest)."""
    root = tmp_path_factory.mktemp("healing")
    cfg = tiny_config(root, prepare_samples=True)
    out = layout.pretrain_dir(cfg)
    out.mkdir(parents=True)
    (out / CONFIG_FILE).write_text(cfg.dump())
    train_with_config(out / CONFIG_FILE)
    return root


def copy_of(finished, tmp_path):
    """The finished run copied under ``tmp_path``, with its config's paths pointing at the copy; (cfg, pretrain
    folder)."""
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    cfg = tiny_config(tmp_path)
    out = layout.pretrain_dir(cfg)
    (out / CONFIG_FILE).write_text(cfg.dump())
    return cfg, out


def test_a_truncated_newest_checkpoint_is_set_aside_and_the_run_resumes_from_the_previous_one(finished, tmp_path,
                                                                                              capsys):
    cfg, out = copy_of(finished, tmp_path)
    checkpoints = out / "checkpoints"
    whole = checkpoint_contents(out, 6)["module"]
    damaged = checkpoints / "step00000006" / "mp_rank_00_model_states.pt"
    size = damaged.stat().st_size
    os.truncate(damaged, size // 2)
    capsys.readouterr()
    manifest = train_with_config(out / CONFIG_FILE)
    printed = capsys.readouterr().out
    assert (f"checkpoint {checkpoints / 'step00000006'} is damaged (mp_rank_00_model_states.pt: {size // 2:,} bytes,"
            f" {size:,} bytes written): kept aside as step00000006.damaged; resuming from step00000003") in printed
    assert "resumed from step 3" in printed and FIRST_BATCH in printed
    aside = checkpoints / "step00000006.damaged" / "mp_rank_00_model_states.pt"
    assert aside.stat().st_size == size // 2  # kept as found
    assert manifest["steps"] == 6 and latest_tag(checkpoints) == "step00000006"
    import torch

    for name, tensor in whole.items():  # the steps 4 to 6 trained again give the same weights, bit for bit
        assert torch.equal(checkpoint_contents(out, 6)["module"][name], tensor), name


def test_a_lost_pointer_resumes_from_the_newest_complete_checkpoint_and_prunes_none(finished, tmp_path, capsys):
    cfg, out = copy_of(finished, tmp_path)
    checkpoints = out / "checkpoints"
    (checkpoints / POINTER_NAME).unlink()
    capsys.readouterr()
    train_with_config(out / CONFIG_FILE)
    printed = capsys.readouterr().out
    assert (f"{checkpoints / POINTER_NAME} is missing: resuming from the newest complete checkpoint,"
            f" step00000006") in printed
    assert "resumed from step 6" in printed and "starting a new run" not in printed and FIRST_BATCH not in printed
    assert sorted(p.name for p in checkpoints.glob("step*")) == ["step00000003", "step00000006"]
    assert latest_tag(checkpoints) == "step00000006"  # the pointer is written again

    shutil.rmtree(checkpoints / "step00000006")  # the pointer now names a folder that is gone
    capsys.readouterr()
    train_with_config(out / CONFIG_FILE)
    printed = capsys.readouterr().out
    assert (f"{checkpoints / POINTER_NAME} names 'step00000006', which is not a checkpoint here: resuming from the"
            f" newest complete checkpoint, step00000003") in printed
    assert "resumed from step 3" in printed


def test_a_truncated_final_model_is_incomplete_and_exported_again_without_training(finished, tmp_path, capfd):
    cfg, out = copy_of(finished, tmp_path)
    weights = layout.final_model_dir(cfg) / "model.safetensors"
    exported = file_sha256(weights)
    os.truncate(weights, weights.stat().st_size - 100)
    status = pretrain_status(cfg)
    assert not status.complete and status.detail == "outputs missing or changed since they were written: final_model"
    capfd.readouterr()
    assert run_pipeline(cfg, stages=PRETRAIN_ONLY) == 0
    printed = capfd.readouterr().out
    assert "resumed from step 6" in printed and FIRST_BATCH not in printed
    assert file_sha256(weights) == exported  # the same model, exported again from step 6
    assert read_manifest(out)["files"]["final_model/model.safetensors"] == {"bytes": weights.stat().st_size,
                                                                           "sha256": exported}
    assert run_pipeline(cfg, stages=PRETRAIN_ONLY) == 0
    assert "[skip] pretrain: complete" in capfd.readouterr().out


def test_a_same_size_garbage_file_in_final_model_is_found_under_verify(finished, tmp_path):
    cfg, _ = copy_of(finished, tmp_path)
    tokenizer = layout.final_model_dir(cfg) / "tokenizer.json"
    tokenizer.write_bytes(bytes(tokenizer.stat().st_size))  # zeros, same size
    [(_, action, _)] = plan(cfg, stages=PRETRAIN_ONLY)
    assert action == "skip"  # sizes alone match
    [(_, action, status)] = plan(cfg, stages=PRETRAIN_ONLY, deep=True)
    assert action == "run" and status.damaged == [str(layout.final_model_dir(cfg))]


def test_pruning_keeps_the_older_checkpoint_while_the_newest_is_damaged(finished, tmp_path):
    _, out = copy_of(finished, tmp_path)
    checkpoints = out / "checkpoints"
    os.truncate(checkpoints / "step00000006" / "mp_rank_00_model_states.pt", 1000)
    assert prune(checkpoints, keep=1) == []
    assert sorted(p.name for p in checkpoints.glob("step*")) == ["step00000003", "step00000006"]
