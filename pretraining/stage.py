"""Pipeline stage "pretrain": run ``pretraining/run_pretraining.py`` on the dataset stage's samples.

The config maps onto the script's flags (``script_flags``); the script runs in its own process(es): under the
DeepSpeed launcher with ``--num_gpus N`` on a GPU machine (``--hostfile`` for several nodes), as one plain
``python`` process on CPU. Its output goes straight to this process's stdout, which the runner copies to the
console and the stage log. Rerunning resumes from the newest checkpoint, because the script does so whenever its
output folder holds one. The script writes ``manifest.json`` (with the settings this module hands it) last, so a
crashed run is never complete.

Top-level imports stay light (no torch): the runner imports this module for status and validation.
"""
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from pipeline import layout
from pipeline.errors import DataError, ExtremeBertError
from pipeline.manifest import read_manifest, write_json_atomic
from pipeline.run_ids import pretrain_settings, samples_identity
from pipeline.stage_status import StageStatus, manifest_status

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "pretraining/run_pretraining.py"
SETTINGS_FILE = "pipeline_settings.json"  # in the pretrain folder: the settings the script records in its manifest


def script_flags(cfg, settings_file) -> list:
    """The ``run_pretraining.py`` arguments that reproduce ``cfg``'s pretraining."""
    m, p, d = cfg.MODEL, cfg.PRETRAIN, cfg.DATASET
    flags = {
        "dataset_path": layout.samples_dir(cfg), "tokenizer_name": layout.dataset_tokenizer_dir(cfg),
        "output_dir": layout.pretrain_dir(cfg), "manifest_settings_file": settings_file,
        "preset": m.PRESET, "hidden_size": m.HIDDEN_SIZE, "num_hidden_layers": m.NUM_HIDDEN_LAYERS,
        "num_attention_heads": m.NUM_ATTENTION_HEADS, "intermediate_size": m.INTERMEDIATE_SIZE,
        "hidden_act": m.HIDDEN_ACT, "hidden_dropout_prob": m.HIDDEN_DROPOUT_PROB,
        "attention_probs_dropout_prob": m.ATTENTION_PROBS_DROPOUT_PROB, "encoder_ln_mode": m.ENCODER_LN_MODE,
        "max_position_embeddings": m.MAX_POSITION_EMBEDDINGS,
        "max_steps": p.NUM_STEPS, "total_training_time": p.TOTAL_TRAINING_HOURS, "lr_schedule": p.SCHEDULE_BASIS,
        "curve": p.SCHEDULER, "warmup_proportion": p.WARMUP_PROPORTION, "esd_ratio": p.ESD.RATIO,
        "esd_start_interval": p.ESD.START_INTERVAL, "lr": p.LEARNING_RATE, "train_batch_size": p.BATCH_SIZE,
        "train_micro_batch_size_per_gpu": p.MICRO_BATCH_SIZE_PER_GPU, "precision": p.PRECISION,
        "optimizer_type": p.OPTIMIZER, "weight_decay": p.WEIGHT_DECAY, "adam_beta1": p.ADAM_BETA1,
        "adam_beta2": p.ADAM_BETA2, "adam_eps": p.ADAM_EPS, "gradient_clipping": p.GRADIENT_CLIPPING,
        "zero_stage": p.ZERO_STAGE, "print_steps": p.LOG_EVERY_STEPS, "validation_every_steps":
        p.VALIDATION_EVERY_STEPS, "validation_max_samples": p.VALIDATION_MAX_SAMPLES,
        "checkpoint_every_steps": p.CHECKPOINT_EVERY_STEPS, "num_checkpoints_to_keep": p.KEEP_CHECKPOINTS,
        "masked_lm_prob": d.MASKED_LM_PROB, "max_predictions_per_seq": d.MAX_PREDICTIONS_PER_SEQ,
        "seed": cfg.SYSTEM.SEED, "job_name": cfg.PRETRAIN.ID, "project_name": cfg.WANDB.PROJECT,
    }
    argv = []
    for key, value in flags.items():
        argv += [f"--{key}", str(value)]
    if m.COMPILE:
        argv.append("--compile")
    if p.EARLY_STOP_EVAL_LOSS > 0:
        argv += ["--use_early_stopping", "--early_stop_time", str(p.EARLY_STOP_TIME_MINUTES),
                 "--early_stop_eval_loss", str(p.EARLY_STOP_EVAL_LOSS)]
    if cfg.WANDB.ENABLED:
        argv += ["--wandb", "--wandb_mode", cfg.WANDB.MODE]
        if cfg.WANDB.ENTITY:
            argv += ["--wandb_entity", cfg.WANDB.ENTITY]
    return argv


def free_port() -> int:
    """A TCP port that is free now, for a torch.distributed rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _deepspeed_launcher() -> list:
    """The ``deepspeed`` launcher of this interpreter's environment."""
    script = Path(sys.executable).parent / "deepspeed"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "deepspeed.launcher.runner"]


def launch_command(cfg, num_gpus: int, settings_file) -> list:
    """The argument list that runs pretraining: the DeepSpeed launcher on GPUs, one python process on CPU."""
    script_args = [SCRIPT] + script_flags(cfg, settings_file)
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
    settings_file = out / SETTINGS_FILE
    write_json_atomic(settings_file, stage_settings(cfg))
    num_gpus = resolve_num_gpus(cfg)
    command = launch_command(cfg, num_gpus, settings_file)
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


def stage_settings(cfg) -> dict:
    """The settings plus the identity of the samples: a dataset rebuilt under the same DATASET.ID makes the
    pretrained model stale (a derived ID changes with the data anyway)."""
    return {**pretrain_settings(cfg), "DATA": samples_identity(layout.samples_dir(cfg))}


def pretrain_status(cfg) -> StageStatus:
    settings = stage_settings(cfg)
    saved = (read_manifest(layout.pretrain_dir(cfg)) or {}).get("settings") or {}
    if saved and "DATA" not in saved:  # a model from before the samples' identity was recorded: judge it without
        settings.pop("DATA")
    return manifest_status(layout.pretrain_dir(cfg), settings,
                           reads=[layout.samples_dir(cfg), layout.dataset_tokenizer_dir(cfg)],
                           writes=[layout.pretrain_dir(cfg)], outputs_ok=lambda: _final_model_ok(cfg))


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
    if p.MICRO_BATCH_SIZE_PER_GPU > p.BATCH_SIZE:
        problems.append(f"PRETRAIN.MICRO_BATCH_SIZE_PER_GPU = {p.MICRO_BATCH_SIZE_PER_GPU} exceeds PRETRAIN.BATCH_SIZE"
                        f" = {p.BATCH_SIZE}")
    if p.EARLY_STOP_TIME_MINUTES > 0 and p.EARLY_STOP_EVAL_LOSS == 0:
        problems.append("PRETRAIN.EARLY_STOP_TIME_MINUTES is set but PRETRAIN.EARLY_STOP_EVAL_LOSS = 0 (off); set the"
                        " loss threshold too, or set the time back to 0")
    if p.SCHEDULE_BASIS == "time" and p.EARLY_STOP_TIME_MINUTES > 60 * p.TOTAL_TRAINING_HOURS:
        problems.append("PRETRAIN.EARLY_STOP_TIME_MINUTES is after the end of PRETRAIN.TOTAL_TRAINING_HOURS")
    if not cfg.DATASET.ENABLED and cfg.DATASET.ID and not layout.samples_dir(cfg).is_dir():
        problems.append(f"DATASET.ENABLED is False but there are no samples at {layout.samples_dir(cfg)}: enable the"
                        f" dataset stage or set DATASET.ID to a prepared dataset")
    return problems



def estimate_bytes(cfg) -> int:
    """Disk the stage may need (checked by the runner): KEEP_CHECKPOINTS + 1 checkpoints (one is written before
    the oldest goes) of ~16 bytes per parameter (weights, Adam's two moments, a master copy), plus the exported
    fp32 model. Imports torch (the model presets live with the model), so only call it when the stage will run."""
    from pretraining.modeling import model_config_from_cfg

    vocab = (read_manifest(layout.dataset_dir(cfg)) or {}).get("vocab_size") or cfg.TOKENIZER.VOCAB_SIZE
    m = model_config_from_cfg(cfg, vocab)
    h, layers, inner = m.hidden_size, m.num_hidden_layers, m.intermediate_size
    params = (m.vocab_size + m.max_position_embeddings + 2) * h + layers * (4 * h * h + 2 * h * inner + 9 * h + inner)
    return params * (16 * (cfg.PRETRAIN.KEEP_CHECKPOINTS + 1) + 4)
