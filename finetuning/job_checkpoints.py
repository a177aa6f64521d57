"""Resumable checkpoints of one finetuning run, ``OUTPUT_DIR/checkpoint-<step>/`` as the HF ``Trainer`` names them:
the model as a Hugging Face folder, the loop's state (``training_state.pt``) and ``trainer_state.json`` (step, log
history, the run's settings), written whole then renamed into place. A run resumes only from a checkpoint of the same
settings: anything else would silently train a different model.
"""
import json
import re
import shutil
from pathlib import Path
from typing import Optional

from pipeline.errors import ConfigError, DataError
from pipeline.manifest import read_json, write_json_atomic
from pipeline.model_files import check_weight_files, write_model_folder

PREFIX = "checkpoint-"
TRAINER_STATE = "trainer_state.json"
TRAINING_STATE = "training_state.pt"
WEIGHTS = "model.safetensors"
_NAME = re.compile(rf"^{PREFIX}(\d+)$")


def list_checkpoints(output_dir) -> list:
    """Complete checkpoint folders in ``output_dir``, oldest first."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()
             and (p / TRAINER_STATE).is_file() and (p / TRAINING_STATE).is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(output_dir) -> Optional[Path]:
    return next(reversed(list_checkpoints(output_dir)), None)


def remove_checkpoints(output_dir) -> list:
    """Delete every checkpoint folder (complete or not) in ``output_dir``; returns their names."""
    folder = Path(output_dir)
    removed = sorted(p.name for p in folder.iterdir() if _NAME.match(p.name)) if folder.is_dir() else []
    for name in removed:
        shutil.rmtree(folder / name, ignore_errors=True)
    return removed


def save_checkpoint(output_dir, step: int, model, tokenizer, training_state: dict, trainer_state: dict,
                    keep: Optional[int] = None) -> Path:
    """Write ``checkpoint-<step>`` atomically (``write_model_folder``), then delete the oldest beyond ``keep``."""
    import torch

    def state_files(folder: Path) -> None:
        torch.save(training_state, folder / TRAINING_STATE)
        write_json_atomic(folder / TRAINER_STATE, trainer_state)

    target = Path(output_dir) / f"{PREFIX}{step}"
    write_model_folder(model, tokenizer, target, state_files)
    if keep:
        for old in list_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def read_trainer_state(folder) -> dict:
    state = read_json(Path(folder) / TRAINER_STATE)
    return state if isinstance(state, dict) else {}


def _first_difference(saved: dict, wanted: dict) -> Optional[str]:
    saved, wanted = json.loads(json.dumps(saved, default=str)), json.loads(json.dumps(wanted, default=str))
    for key in sorted(set(saved) | set(wanted)):
        if saved.get(key) != wanted.get(key):
            return f"{key} {saved.get(key)!r} there, {wanted.get(key)!r} now"
    return None


def check_settings(folder, settings: dict) -> dict:
    """The checkpoint's trainer state; DataError when ``folder`` is no complete checkpoint, ConfigError when it was
    made with other ``settings``."""
    folder = Path(folder)
    trainer_state = read_trainer_state(folder)
    if not trainer_state or not (folder / TRAINING_STATE).is_file():
        raise DataError(f"{folder} is not a complete checkpoint of run_glue.py (no {TRAINER_STATE} or"
                        f" {TRAINING_STATE}); pass another --resume_from_checkpoint or --overwrite_output_dir")
    difference = _first_difference(trainer_state.get("run_settings", {}), settings)
    if difference:
        raise ConfigError(f"{folder} was written by a run with other settings ({difference}); rerun with the same"
                          f" flags to resume, or pass --overwrite_output_dir to train from scratch")
    return trainer_state


def load_checkpoint(folder, model, settings: dict) -> tuple:
    """Load ``folder``'s weights into ``model``; returns (training state, trainer state)."""
    import torch
    from safetensors.torch import load_model

    folder = Path(folder)
    trainer_state = check_settings(folder, settings)
    check_weight_files(folder)
    missing, unexpected = load_model(model, folder / WEIGHTS, strict=False)
    if missing or unexpected:
        raise DataError(f"{folder / WEIGHTS} does not fit the model ({len(missing)} missing, {len(unexpected)}"
                        f" unexpected tensors, e.g. {(missing or unexpected)[0]})")
    return torch.load(folder / TRAINING_STATE, map_location="cpu", weights_only=True), trainer_state
