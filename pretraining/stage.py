"""Pipeline stage "pretrain": run ``pretraining/run_pretraining.py`` on the dataset stage's samples.

The stage writes the resolved config into the pretrain folder and hands the script that file (``--config``), so
the script trains on exactly the pipeline's settings and paths, in its own process(es) (the DeepSpeed launcher for
several GPUs or CPU ranks, else one plain ``python``), its output on this process's stdout. Rerunning resumes from
the newest checkpoint; the script writes ``manifest.json`` (with ``stage_settings``) last, so a crashed run is
never complete. Top-level imports stay light (no torch): the runner imports this module for status and validation.
"""
import logging
import os
import subprocess
import sys
from pathlib import Path

from pipeline import layout
from pipeline.disk import DiskError
from pipeline.errors import ConfigError, DataError, ExitCode, ExtremeBertError
from pipeline.hardware import data_parallel_processes, fp16_problems, free_port, gpus_may_be_used, resolve_num_gpus
from pipeline.manifest import (StageStatus, changed_files, file_records, manifest_status, read_manifest,
                               write_text_atomic)
from pipeline.run_ids import horizon, pretrain_settings, samples_identity

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "pretraining/run_pretraining.py"
CONFIG_FILE = "config.yaml"  # in the pretrain folder: the resolved config the script runs with


def launch_command(cfg, num_gpus: int, config_file) -> list:
    """The argument list that runs pretraining: the DeepSpeed launcher with one process per GPU (or
    SYSTEM.PROCESSES_PER_NODE of them, gloo ranks on CPU; ``--hostfile`` for several nodes), else one plain python
    process on CPU."""
    script_args = [SCRIPT, "--config", str(config_file)]
    processes = data_parallel_processes(cfg, num_gpus)
    if num_gpus <= 0 and processes == 1 and not cfg.SYSTEM.HOSTFILE:
        return [sys.executable] + script_args
    launcher = Path(sys.executable).parent / "deepspeed"  # the one of this interpreter's environment
    command = [str(launcher)] if launcher.is_file() else [sys.executable, "-m", "deepspeed.launcher.runner"]
    command += ["--num_gpus", str(processes)] + (["--hostfile", cfg.SYSTEM.HOSTFILE] if cfg.SYSTEM.HOSTFILE else [])
    return command + ["--master_port", str(cfg.SYSTEM.MASTER_PORT or free_port())] + script_args


# torch.distributed variables a parent process may carry (a job scheduler's, or a process group of its own): the
# training process must form its own group, not join or collide with that one.
INHERITED_DISTRIBUTED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launch_env(cfg, num_gpus: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_DISTRIBUTED_ENV}
    env.update(PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    if num_gpus <= 0:
        # CPU ranks share the cores the config grants (the launcher would leave each rank torch's default, all of
        # them: N ranks x all cores oversubscribe the CPU several-fold).
        cores = cfg.SYSTEM.NUM_WORKERS or os.cpu_count() or 1
        env.setdefault("OMP_NUM_THREADS", str(max(1, cores // data_parallel_processes(cfg, num_gpus))))
        if cfg.SYSTEM.MASTER_PORT:
            env["MASTER_PORT"] = str(cfg.SYSTEM.MASTER_PORT)
    if not cfg.WANDB.ENABLED:
        env["WANDB_MODE"] = "disabled"
    return env


def _too_many_processes(cfg, num_gpus: int) -> str:
    return (f"SYSTEM.PROCESSES_PER_NODE = {cfg.SYSTEM.PROCESSES_PER_NODE} exceeds the node's {num_gpus} GPUs (one"
            f" process per GPU); set it to 0 (one per GPU) or at most {num_gpus}")


def pretrain(cfg) -> None:
    """Run (or resume) pretraining; returns when ``final_model/`` and ``manifest.json`` are written."""
    samples, out = layout.samples_dir(cfg), layout.pretrain_dir(cfg)
    if not samples.is_dir():
        raise DataError(f"no samples at {samples}: run the dataset stage first (DATASET.ENABLED True)")
    out.mkdir(parents=True, exist_ok=True)
    config_file = out / CONFIG_FILE
    write_text_atomic(config_file, cfg.dump())
    num_gpus = resolve_num_gpus(cfg)
    if 0 < num_gpus < cfg.SYSTEM.PROCESSES_PER_NODE:
        raise ConfigError(_too_many_processes(cfg, num_gpus))
    command = launch_command(cfg, num_gpus, config_file)
    log.info(f"launching: {' '.join(command)}")
    code = subprocess.run(command, cwd=REPO_ROOT, env=launch_env(cfg, num_gpus)).returncode
    if code == ExitCode.DISK:  # the script said why on the line above; keep the code for main.py
        raise DiskError(f"pretraining stopped: the disk of {out} is full or read-only (see the line above)")
    if code == ExitCode.CONFIG:  # a setting or checkpoint refused: the same command would be refused again
        raise ExtremeBertError("pretraining refused to start (the error line above says why and what to change)")
    if code == ExitCode.STOPPED:  # diverged or stopped by an early-stop rule: resuming would only stop again
        raise ExtremeBertError("pretraining stopped (see the line above); rerunning the same command would stop the"
                               " same way: change the setting that line names (a derived PRETRAIN.ID follows the"
                               " change; an explicit PRETRAIN.ID needs a new name)")
    if code != 0:
        raise ExtremeBertError(f"pretraining exited with code {code} (see the lines above); rerun the same command"
                               f" to resume from the newest checkpoint in {out / 'checkpoints'}")
    if not pretrain_status(cfg).complete:
        raise ExtremeBertError(f"pretraining finished but {out} holds no matching manifest/final_model")


def final_model_records(pretrain_dir) -> dict:
    """Size and sha256 of every file of ``final_model/`` (keyed ``final_model/<name>``): the manifest's ``files``."""
    final = Path(pretrain_dir) / layout.FINAL_MODEL
    return file_records(pretrain_dir, [path for path in final.rglob("*") if path.is_file()])


def damaged_outputs(cfg, deep: bool = False) -> list:
    """``final_model`` when one of its files is missing or changed since the manifest recorded it (sizes; sha256
    too with ``deep``): the runner deletes it, and the stage, resuming from the newest checkpoint (at its end),
    exports it again without training."""
    records = (read_manifest(layout.pretrain_dir(cfg)) or {}).get("files")
    changed = isinstance(records, dict) and changed_files(layout.pretrain_dir(cfg), records, deep)
    return [layout.FINAL_MODEL] if changed else []


def stage_settings(cfg, samples_dir=None) -> dict:
    """The settings plus the identity of the samples (``samples_dir``, by default the dataset stage's): a dataset
    rebuilt under the same DATASET.ID makes the pretrained model stale (a derived ID changes with the data anyway).
    The script records this in its manifest and checkpoints, and the pipeline compares it; one definition."""
    return {**pretrain_settings(cfg), "DATA": samples_identity(samples_dir or layout.samples_dir(cfg))}


def horizon_shortfall(asked: dict, trained: dict) -> str:
    """Why a model trained under the horizon ``trained`` (the manifest's) falls short of the horizon ``asked``, or ""
    when it does not: raising NUM_STEPS or TOTAL_TRAINING_HOURS makes a finished run incomplete, and rerunning the
    stage continues it from its newest checkpoint. A lower horizon than trained is no shortfall (nothing is undone)."""
    short = [f"{key} {trained.get(key)} -> {value}" for key, value in asked.items()
             if trained.get(key) is None or trained[key] < value]
    return f"horizon raised ({', '.join(short)}): rerunning continues from the newest checkpoint" if short else ""


def pretrain_status(cfg, deep: bool = False) -> StageStatus:
    settings, final = stage_settings(cfg), layout.final_model_dir(cfg)
    manifest = read_manifest(layout.pretrain_dir(cfg)) or {}
    saved = manifest.get("settings") or {}
    if saved and "DATA" not in saved:  # a model from before the samples' identity was recorded: judge it without
        settings.pop("DATA")
    status = manifest_status(layout.pretrain_dir(cfg), settings,
                             reads=[layout.samples_dir(cfg), layout.dataset_tokenizer_dir(cfg)]
                             + ([cfg.PRETRAIN.INIT_FROM] if cfg.PRETRAIN.INIT_FROM else []),
                             writes=[layout.pretrain_dir(cfg)], damaged=damaged_outputs(cfg, deep),
                             outputs_ok=lambda: (final / "config.json").is_file() and any(final.glob("*.safetensors")))
    shortfall = horizon_shortfall(horizon(cfg), manifest.get("horizon") or {}) if status.complete else ""
    if shortfall:
        status.complete, status.detail = False, shortfall
    return status


def validate_config(cfg) -> list:
    """Pretraining checks that need neither torch nor the data."""
    p = cfg.PRETRAIN
    if not p.ENABLED:
        return []
    problems = fp16_problems(p.PRECISION, gpus_may_be_used(cfg), "PRETRAIN.PRECISION")
    if 0 < cfg.SYSTEM.NUM_GPUS < cfg.SYSTEM.PROCESSES_PER_NODE:
        problems.append(_too_many_processes(cfg, cfg.SYSTEM.NUM_GPUS))
    if not cfg.DATASET.ENABLED and cfg.DATASET.ID and not layout.samples_dir(cfg).is_dir():
        problems.append(f"DATASET.ENABLED is False but there are no samples at {layout.samples_dir(cfg)}: enable the"
                        f" dataset stage or set DATASET.ID to a prepared dataset")
    return problems


def estimate_bytes(cfg) -> int:
    """Disk the stage may need (checked by the runner): KEEP_CHECKPOINTS + 1 checkpoints (one is written before
    the oldest goes) of ~16 bytes per parameter (weights, Adam's two moments, a master copy), plus the exported
    fp32 model. Imports torch (the model presets live with the model), so only call it when the stage will run."""
    from pretraining.modeling import model_config_from_cfg, parameter_count

    vocab = (read_manifest(layout.dataset_dir(cfg)) or {}).get("vocab_size") or cfg.TOKENIZER.VOCAB_SIZE
    return parameter_count(model_config_from_cfg(cfg, vocab)) * (16 * (cfg.PRETRAIN.KEEP_CHECKPOINTS + 1) + 4)
