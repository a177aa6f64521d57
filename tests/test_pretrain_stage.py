"""The pipeline's pretrain stage: config -> script flags, launch commands, status, config checks, and one real run
through the stage entry point."""
import os
import sys

import pytest
from huggingface_hub import ModelCard

from pipeline import layout
from orchestration.stages import load_config
from pipeline.manifest import read_manifest
from pipeline.errors import ExtremeBertError
from pipeline.run_ids import pretrain_settings, samples_identity
from pipeline.tensorboard_log import read_scalars
from pretraining.arguments import parse_arguments
from pretraining.stage import SCRIPT, launch_command, pretrain, pretrain_status, validate_config
from tests.pretrain_fixtures import make_dataset, write_tokenizer

TINY = ["MODEL.PRESET", "bert-tiny", "MODEL.HIDDEN_SIZE", "32", "MODEL.NUM_ATTENTION_HEADS", "2",
        "MODEL.INTERMEDIATE_SIZE", "64", "MODEL.MAX_POSITION_EMBEDDINGS", "64", "PRETRAIN.NUM_STEPS", "6",
        "PRETRAIN.BATCH_SIZE", "8", "PRETRAIN.MICRO_BATCH_SIZE_PER_GPU", "4", "PRETRAIN.PRECISION", "fp32",
        "PRETRAIN.LOG_EVERY_STEPS", "3", "PRETRAIN.VALIDATION_EVERY_STEPS", "0", "PRETRAIN.CHECKPOINT_EVERY_STEPS", "3",
        "PRETRAIN.EARLY_STOP_TIME_MINUTES", "30", "PRETRAIN.EARLY_STOP_EVAL_LOSS", "9.5",
        "DATASET.MAX_SEQ_LENGTH", "32"]


def tiny_config(tmp_path, *opts, prepare_samples=False):
    """A config whose dataset stage is off and whose samples (if asked) are already at the layout's place."""
    base = ["SYSTEM.OUTPUT_ROOT", str(tmp_path / "runs"), "SYSTEM.NUM_GPUS", "0", "DATASET.ENABLED", "False",
            "DATASET.ID", "tiny", "FINETUNE.ENABLED", "False", "RESULT_COLLECTION.ENABLED", "False"]
    if prepare_samples:
        dataset = tmp_path / "runs" / "datasets" / "tiny"
        make_dataset(dataset / "samples", "dynamic")
        write_tokenizer(dataset / "tokenizer")
    return load_config(None, base + TINY + list(opts))


def test_the_script_reads_the_stage_config_with_the_same_settings_and_paths(tmp_path):
    cfg = tiny_config(tmp_path, "PRETRAIN.SCHEDULER", "cosine", "PRETRAIN.SCHEDULE_BASIS", "time", "WANDB.ENABLED",
                      "True", "WANDB.MODE", "offline", "MODEL.ENCODER_LN_MODE", "post-ln", prepare_samples=True)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(cfg.dump())
    command = launch_command(cfg, 0, config_file)
    assert command[1:] == [SCRIPT, "--config", str(config_file)]
    script_cfg, paths = parse_arguments(command[2:])
    assert script_cfg == cfg
    assert (paths.samples_dir, paths.output_dir) == (layout.samples_dir(cfg), layout.pretrain_dir(cfg))
    assert paths.tokenizer == str(layout.dataset_tokenizer_dir(cfg))
    assert paths.tensorboard_dir == layout.run_dir(cfg) / "tensorboard" / "pretrain"
    assert parse_arguments(command[2:] + ["--output_dir", str(tmp_path / "o")])[1].tensorboard_dir == \
        tmp_path / "o" / "tensorboard"  # another output folder keeps its event files
    overridden, _ = parse_arguments(command[2:] + ["--lr", "5e-4", "--bf16"])
    assert (overridden.PRETRAIN.LEARNING_RATE, overridden.PRETRAIN.PRECISION) == (5e-4, "bf16")
    assert overridden.PRETRAIN.SCHEDULER == "cosine"


def test_gpus_launch_through_deepspeed_and_cpu_runs_one_python_process(tmp_path):
    cfg = tiny_config(tmp_path, "SYSTEM.MASTER_PORT", "29611", prepare_samples=True)
    cpu = launch_command(cfg, 0, "config.yaml")
    assert cpu[:2] == [sys.executable, SCRIPT]
    gpu = launch_command(cfg, 4, "config.yaml")
    assert "deepspeed" in " ".join(gpu[:3]) and gpu[gpu.index("--num_gpus") + 1] == "4"
    assert gpu[gpu.index("--master_port") + 1] == "29611" and gpu.index(SCRIPT) > gpu.index("--master_port")
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("node1 slots=8\n")
    cfg = tiny_config(tmp_path, "SYSTEM.HOSTFILE", str(hostfile))
    multi = launch_command(cfg, 8, "config.yaml")
    assert multi[multi.index("--hostfile") + 1] == str(hostfile)


def test_processes_per_node_starts_that_many_cpu_ranks_through_the_launcher_with_the_cores_shared(tmp_path,
                                                                                                  monkeypatch):
    from pretraining.stage import launch_env

    cfg = tiny_config(tmp_path, "SYSTEM.PROCESSES_PER_NODE", "2", "SYSTEM.NUM_WORKERS", "4", prepare_samples=True)
    command = launch_command(cfg, 0, "config.yaml")
    assert "deepspeed" in " ".join(command[:3]) and command[command.index("--num_gpus") + 1] == "2"
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert launch_env(cfg, 0)["OMP_NUM_THREADS"] == "2"  # 4 cores / 2 ranks
    with pytest.raises(ExtremeBertError, match="SYSTEM.PROCESSES_PER_NODE = 4 exceeds the node's 2 GPUs"):
        tiny_config(tmp_path, "SYSTEM.NUM_GPUS", "2", "SYSTEM.PROCESSES_PER_NODE", "4", prepare_samples=True)


def test_config_checks_catch_fp16_without_a_gpu_and_missing_samples(tmp_path):
    with pytest.raises(Exception) as e:
        tiny_config(tmp_path, "PRETRAIN.PRECISION", "fp16")
    problems = str(e.value)
    assert "PRETRAIN.PRECISION = fp16 needs a GPU" in problems and "no samples at" in problems
    assert validate_config(tiny_config(tmp_path, prepare_samples=True)) == []


@pytest.mark.slow
def test_the_stage_trains_writes_its_manifest_and_is_then_complete(tmp_path, capfd):
    cfg = tiny_config(tmp_path, prepare_samples=True)
    status = pretrain_status(cfg)
    assert not status.complete and str(layout.samples_dir(cfg)) in status.reads
    pretrain(cfg)
    assert pretrain_status(cfg).complete
    manifest = read_manifest(layout.pretrain_dir(cfg))
    assert manifest["settings"] == {**pretrain_settings(cfg), "DATA": samples_identity(layout.samples_dir(cfg))}
    assert "step 6/6" in capfd.readouterr().out  # the child's output streams through this process
    scalars = read_scalars(layout.tensorboard_dir(cfg) / "pretrain")  # tensorboard --logdir <run>/tensorboard
    assert [step for step, _ in scalars["train/loss"]] == [3, 6] and [step for step, _ in scalars["eval/loss"]] == [6]
    card = ModelCard.load(layout.final_model_dir(cfg) / "README.md")
    assert (card.data.library_name, card.data.pipeline_tag, card.data.license) == ("transformers", "fill-mask", "other")
    assert f"| steps | {manifest['steps']} |" in card.text and f"| precision | {manifest['precision']} |" in card.text
    assert "final_model/README.md" in manifest["files"]  # recorded with the weights: a lost card is re-exported
    (layout.final_model_dir(cfg) / "README.md").unlink()
    assert not pretrain_status(cfg).complete


@pytest.mark.slow
def test_samples_rebuilt_under_the_same_dataset_id_make_the_model_stale_and_the_checkpoints_refuse(tmp_path, capfd):
    cfg = tiny_config(tmp_path, prepare_samples=True)
    pretrain(cfg)
    assert pretrain_status(cfg).complete
    shard = sorted(layout.samples_dir(cfg).glob("train_*.hdf5"))[0]
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 10**9))  # rewritten (no manifest here)
    status = pretrain_status(cfg)
    assert not status.complete and status.detail == "settings changed since the last run"
    capfd.readouterr()
    with pytest.raises(ExtremeBertError) as info:
        pretrain(cfg)
    printed = capfd.readouterr()
    assert "holds checkpoints of a different run (DATA: [['test_shard_00000.hdf5'" in printed.out + printed.err
    assert "another PRETRAIN.ID through main.py" in printed.err
    assert str(info.value) == "pretraining refused to start (the error line above says why and what to change)"


@pytest.mark.slow
def test_a_diverged_run_says_what_to_change_instead_of_rerun_to_resume(tmp_path, capfd):
    cfg = tiny_config(tmp_path, "PRETRAIN.LEARNING_RATE", "1e30", "PRETRAIN.SCHEDULER", "constant",
                      "PRETRAIN.WARMUP_PROPORTION", "0", prepare_samples=True)
    with pytest.raises(ExtremeBertError) as info:
        pretrain(cfg)
    assert str(info.value) == ("pretraining stopped (see the line above); rerunning the same command would stop the"
                               " same way: change the setting that line names (a derived PRETRAIN.ID follows the"
                               " change; an explicit PRETRAIN.ID needs a new name)")
    printed = capfd.readouterr()
    assert "training diverged; lower the learning rate (PRETRAIN.LEARNING_RATE, --lr)" in printed.out + printed.err
    assert not pretrain_status(cfg).complete


def test_the_training_process_forms_its_own_group_whatever_the_parent_carries(tmp_path, monkeypatch):
    from pretraining.stage import launch_env

    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("MASTER_PORT", "41199")  # e.g. the parent's own process group is listening there
    cfg = tiny_config(tmp_path, prepare_samples=True)
    env = launch_env(cfg, 0)
    assert "RANK" not in env and "MASTER_PORT" not in env
    cfg = tiny_config(tmp_path, "SYSTEM.MASTER_PORT", "29555", prepare_samples=True)
    assert launch_env(cfg, 0)["MASTER_PORT"] == "29555"
