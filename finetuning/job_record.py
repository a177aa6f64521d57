"""What a job's ``job.json`` must hold to count as complete: its grid values, its model and STILT source, the
FINETUNE settings that change its result, and the stamps of the files it read. The settings part comes from the
settings table: every FINETUNE setting of role RESULT, and of RESULT_IF_CHANGED when off its default, under its
key's last part in lower case; a record written before such a setting left the record at its default still counts.
"""
import json
from pathlib import Path
from typing import Optional

from finetuning.glue_data import HUB_DATASET
from pipeline.defaults import SETTINGS, get_key
from pipeline.manifest import read_json
from pipeline.run_ids import file_stamp, in_identity
from pipeline.setting import RESULT, RESULT_IF_CHANGED

JOB_FILE = "job.json"
EVAL_FILE = "eval_results.json"
MODEL_SUBDIR = "model"  # where a job saves its finetuned model (run_glue.py --save_model); STILT targets start from it
# GLUE_DIR is recorded as the data the job read: the folder, or the Hub dataset when there is none.
_RECORD_NAMES = {"FINETUNE.GLUE_DIR": "data"}
# The FINETUNE settings that change a job's result, under their names in the record.
RECORDED = {_RECORD_NAMES.get(s.key, s.key.split(".")[-1].lower()): s for s in SETTINGS
            if s.key.startswith("FINETUNE.") and s.identity in (RESULT, RESULT_IF_CHANGED)}


def job_settings(cfg, random_init: bool) -> dict:
    """Everything besides the grid values and the input files that changes a job's result; a completed job counts
    only if they match."""
    settings = {name: get_key(cfg, setting.key) for name, setting in RECORDED.items()
                if in_identity(setting, get_key(cfg, setting.key))}
    settings["data"] = settings["data"] or HUB_DATASET
    return {**settings, "random_init": random_init}


def _without_defaults(settings) -> dict:
    """``settings`` less the RESULT_IF_CHANGED ones at their default: records of either shape compare equal."""
    if not isinstance(settings, dict):
        return settings
    return {name: value for name, value in settings.items()
            if name not in RECORDED or in_identity(RECORDED[name], value)}


# The files of a model folder that make the model: config, weights and tokenizer (not a README or a .git).
_MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model")


def model_stamps(model: str) -> list:
    """Size and mtime of the model folder's files, so a re-pretrained or edited model at the same path reruns the
    jobs that start from it; a hub name stands for itself."""
    folder = Path(model)
    if not folder.is_dir():
        return [model]
    return [file_stamp(path) for path in sorted(folder.iterdir()) if path.is_file() and
            path.suffix in _MODEL_FILE_SUFFIXES]


def data_stamps(paths: list, relative_to: str = "") -> list:
    """Size and mtime of every file a job reads (a GLUE task's train, dev and test files, and the test files of the
    tasks it also predicts, named relative to GLUE_DIR; an own task's files); none for the Hub, which the ``data``
    setting names."""
    return [file_stamp(path, str(Path(path).relative_to(relative_to) if relative_to else path)) for path in paths]


def expected_record(job, model_name_or_path: str, init_from: Optional[str], settings: dict,
                    inputs: Optional[dict] = None) -> dict:
    """The fields that must match for a completed job to count for the current config: the grid values, the model,
    the STILT source, the ``settings`` and the stamps of the files it reads (``inputs``: ``{"model": [...],
    "data": [...]}``)."""
    return {"task": job.task, "learning_rate": job.learning_rate, "batch_size": job.batch_size,
            "epochs": job.epochs, "seed": job.seed, "model_name_or_path": model_name_or_path, "init_from": init_from,
            "settings": settings, "inputs": inputs or {}}


def records_match(record, expected: dict) -> bool:
    def same(key, value):
        recorded = record.get(key)
        if key == "settings":
            recorded, value = _without_defaults(recorded), _without_defaults(value)
        return json.dumps(recorded, sort_keys=True) == json.dumps(value, sort_keys=True)

    return isinstance(record, dict) and all(same(key, value) for key, value in expected.items())


def is_completed(job_dir: Path, expected: dict) -> bool:
    """True when ``job_dir`` holds a completed job run with exactly the ``expected`` fields and its dev results."""
    record = read_json(Path(job_dir) / JOB_FILE)
    return (isinstance(record, dict) and record.get("status") == "completed" and (Path(job_dir) / EVAL_FILE).is_file()
            and records_match(record, expected))
