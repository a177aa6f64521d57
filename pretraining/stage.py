"""Pipeline stage "pretrain": run ``pretraining/run_pretraining.py`` on the dataset stage's samples.

The stage writes the resolved config into the pretrain folder and hands the script that file (``--config``), so
the script trains on exactly the pipeline's settings and paths. The script runs in its own process(es): under the
DeepSpeed launcher with ``--num_gpus N`` on a GPU machine (``--hostfile`` for several nodes), as one plain
``python`` process on CPU. Its output goes straight to this process's stdout, which the runner copies to the
console and the stage log. Rerunning resumes from the newest checkpoint, because the script does so whenever its
output folder holds one. The script writes ``manifest.json`` (with ``stage_settings``) last, so a crashed run is
never complete.

Top-level imports stay light (no torch): the runner imports this module for status and validation.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline import layout
from pipeline.errors import DataError, ExtremeBertError
from pipeline.hardware import free_port
from pipeline.manifest import read_manifest, write_text_atomic
from pipeline.run_ids import horizon, pretrain_settings, samples_identity
from pipeline.stage_status import StageStatus, manifest_status

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "pretraining/run_pretraining.py"
CONFIG_FILE = "config.yaml"  # in the pretrain folder: the resolved config the script runs with


def _deepspeed_launcher() -> list:
    """The ``deepspeed`` launcher of this interpreter's environment."""
    script = Path(sys.executable).parent / "deepspeed"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "deepspeed.launcher.runner"]


def launch_command(cfg, num_gpus: int, config_file) -> list:
    """The argument list that runs pretraining: the DeepSpeed launcher on GPUs, one python process on CPU."""
    script_args = [SCRIPT, "--config", str(config_file)]
    if num_gpus <= 0:
        return [sys.executable] + script_args
    command = _deepspeed_launcher() + ["--num_gpus", str(num_gpus)]
    if cfg.SYSTEM.HOSTFILE:
        command += ["--hostfile", cfg.SYSTEM.HOSTFILE]
    command += ["--master_port", str(cfg.SYSTEM.MASTER_PORT or free_port())]
    return command + script_args


def launch_env(cfg, num_gpus: int) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    if num_gpus <= 0:
        # One CPU process: let torch use the cores the config grants (the launcher's default would be 1 thread).
        env.setdefault("OMP_NUM_THREADS", str(cfg.SYSTEM.NUM_WORKERS or os.cpu_count() or 1))
        if cfg.SYSTEM.MASTER_PORT:
            env.setdefault("MASTER_PORT", str(cfg.SYSTEM.MASTER_PORT))
    if not cfg.WANDB.ENABLED:
        env["WANDB_MODE"] = "disabled"
    return env


def pretrain(cfg) -> None:
    """Run (or resume) pretraining; returns when ``final_model/`` and ``manifest.json`` are written."""
    from pipeline.hardware import resolve_num_gpus

    samples, out = layout.samples_dir(cfg), layout.pretrain_dir(cfg)
    if not samples.is_dir():
        raise DataError(f"no samples at {samples}: run the dataset stage first (DATASET.ENABLED True)")
    out.mkdir(parents=True, exist_ok=True)
    config_file = out / CONFIG_FILE
    write_text_atomic(config_file, cfg.dump())
    num_gpus = resolve_num_gpus(cfg)
    command = launch_command(cfg, num_gpus, config_file)
    print(f"launching: {' '.join(command)}", flush=True)
    code = subprocess.run(command, cwd=REPO_ROOT, env=launch_env(cfg, num_gpus)).returncode
    if code != 0:
        raise ExtremeBertError(f"pretraining exited with code {code} (see the lines above); rerun the same command"
                               f" to resume from the newest checkpoint in {out / 'checkpoints'}")
    if not pretrain_status(cfg).complete:
        raise ExtremeBertError(f"pretraining finished but {out} holds no matching manifest/final_model")


def _final_model_ok(cfg) -> bool:
    final = layout.final_model_dir(cfg)
    return (final / "config.json").is_file() and any(final.glob("*.safetensors"))


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


def pretrain_status(cfg) -> StageStatus:
    settings = stage_settings(cfg)
    manifest = read_manifest(layout.pretrain_dir(cfg)) or {}
    saved = manifest.get("settings") or {}
    if saved and "DATA" not in saved:  # a model from before the samples' identity was recorded: judge it without
        settings.pop("DATA")
    status = manifest_status(layout.pretrain_dir(cfg), settings,
                             reads=[layout.samples_dir(cfg), layout.dataset_tokenizer_dir(cfg)]
                             + ([cfg.PRETRAIN.INIT_FROM] if cfg.PRETRAIN.INIT_FROM else []),
                             writes=[layout.pretrain_dir(cfg)], outputs_ok=lambda: _final_model_ok(cfg))
    shortfall = horizon_shortfall(horizon(cfg), manifest.get("horizon") or {}) if status.complete else ""
    if shortfall:
        status.complete, status.detail = False, shortfall
    return status


def _machine_has_gpu() -> bool:
    """A cheap guess (no CUDA initialisation): an NVIDIA device node exists."""
    return any(Path("/dev").glob("nvidia[0-9]*")) or (shutil.which("nvidia-smi") is not None
                                                       and Path("/proc/driver/nvidia").exists())


def validate_config(cfg) -> list:
    """Pretraining checks that need neither torch nor the data."""
    problems = []
    p = cfg.PRETRAIN
    if not p.ENABLED:
        return problems
    no_gpu = cfg.SYSTEM.NUM_GPUS == 0 or (cfg.SYSTEM.NUM_GPUS < 0 and not _machine_has_gpu())
    if p.PRECISION == "fp16" and no_gpu:
        problems.append("PRETRAIN.PRECISION = fp16 needs a GPU (DeepSpeed has no fp16 on CPU); use bf16, fp32 or auto")
    if not cfg.DATASET.ENABLED and cfg.DATASET.ID and not layout.samples_dir(cfg).is_dir():
        problems.append(f"DATASET.ENABLED is False but there are no samples at {layout.samples_dir(cfg)}: enable the"
                        f" dataset stage or set DATASET.ID to a prepared dataset")
    return problems

