"""Automatic dataset and run IDs, and the settings that define each stage's output.

An ID is a readable prefix plus a short hash of everything that changes the output, so changing any setting gives
a new folder and rerunning with the same settings finds the old one. Settings that change only *how* the work is
done (worker count, memory cap, logging intervals) are left out: they must not change the result.
"""
import hashlib
import json
import re
from pathlib import Path

from dataset.hub_entries import HubEntry
from pipeline.manifest import read_manifest

# PRETRAIN keys that do not change the trained weights.
_PRETRAIN_OPERATIONAL_KEYS = {"ENABLED", "ID", "LOG_EVERY_STEPS", "VALIDATION_EVERY_STEPS", "VALIDATION_MAX_SAMPLES",
                              "CHECKPOINT_EVERY_STEPS", "KEEP_CHECKPOINTS"}


def _plain(node):
    """A yacs node (or any value) as plain JSON-able Python data."""
    return json.loads(json.dumps(node, default=str))


def short_hash(payload, length: int = 8) -> str:
    return hashlib.sha256(json.dumps(_plain(payload), sort_keys=True).encode()).hexdigest()[:length]


def file_stamp(path, name=None) -> list:
    """``[name, size, mtime_ns]`` of a file (size and mtime None when it is absent): cheap to take, yet it changes
    whenever the file is rewritten. ``name`` defaults to the file's name."""
    path = Path(path)
    stat = path.stat() if path.is_file() else None
    return [path.name if name is None else name, stat.st_size if stat else None, stat.st_mtime_ns if stat else None]


def corpus_fingerprint(folders) -> list:
    """The stamp of every .txt under each folder, then the folder itself."""
    entries = []
    for folder in folders:
        root = Path(folder)
        for path in sorted(root.rglob("*.txt")):
            if path.is_file():
                entries.append(file_stamp(path, str(path.relative_to(root))))
        entries.append([str(root), None, None])
    return entries


def local_inputs_fingerprint(cfg) -> list:
    """The stamp of every file of the local inputs named by path, other than the corpus folders: a tokenizer folder
    (when it is loaded, not trained) and local files or folders given to DATASET.HUGGINGFACE_DATASETS. A hub name
    that is not a local path adds nothing."""
    values = [] if cfg.TOKENIZER.TRAIN else [cfg.TOKENIZER.NAME_OR_PATH]
    values += [str(value) for entry in cfg.DATASET.HUGGINGFACE_DATASETS for value in entry]
    entries = []
    for value in values:
        path = Path(value)
        if path.is_dir():
            entries += [file_stamp(f, f"{value}/{f.relative_to(path)}") for f in sorted(path.rglob("*")) if f.is_file()]
        elif path.is_file():
            entries.append(file_stamp(path, value))
    return entries


def dataset_settings(cfg) -> dict:
    """Everything that determines the prepared dataset's content (inputs, sharding, masking, tokenizer, seed)."""
    dataset = {k: v for k, v in _plain(cfg.DATASET).items() if k not in ("ENABLED", "ID")}
    return {"DATASET": dataset, "TOKENIZER": _plain(cfg.TOKENIZER), "SEED": cfg.SYSTEM.SEED}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "data"


def derive_dataset_id(cfg) -> str:
    names = [_slug(HubEntry.parse(entry).name.split("/")[-1]) for entry in cfg.DATASET.HUGGINGFACE_DATASETS]
    names += [_slug(Path(folder).name) for folder in cfg.DATASET.CUSTOMIZED_DATASETS]
    prefix = "+".join(names[:3]) if names else "data"
    fingerprint = {"settings": dataset_settings(cfg), "corpus": corpus_fingerprint(cfg.DATASET.CUSTOMIZED_DATASETS)}
    local_inputs = local_inputs_fingerprint(cfg)
    if local_inputs:  # only when there are any, so IDs of hub-only and corpus-only inputs stay as they were
        fingerprint["local_inputs"] = local_inputs
    return f"{prefix}-{short_hash(fingerprint)}"


def samples_identity(samples_dir) -> list:
    """What identifies the prepared samples a model trains on: ``[file, sha256]`` of every shard from the dataset
    manifest next to ``samples_dir``, or the stamps (name, size, mtime) of its HDF5 files when there is none."""
    samples_dir = Path(samples_dir)
    shards = (read_manifest(samples_dir.parent) or {}).get("shards")
    if shards:
        return sorted([entry["file"], entry.get("sha256")] for entry in shards)
    return [file_stamp(path) for path in sorted(samples_dir.glob("*.hdf5"))]


def pretrain_settings(cfg) -> dict:
    """Everything that determines the pretrained weights: the data, the architecture and the training recipe."""
    pretrain = {k: v for k, v in _plain(cfg.PRETRAIN).items() if k not in _PRETRAIN_OPERATIONAL_KEYS}
    return {"DATASET_ID": cfg.DATASET.ID, "MODEL": _plain(cfg.MODEL), "PRETRAIN": pretrain, "SEED": cfg.SYSTEM.SEED}


def derive_pretrain_id(cfg) -> str:
    return f"{_slug(cfg.MODEL.PRESET or 'bert')}-{short_hash(pretrain_settings(cfg))}"
