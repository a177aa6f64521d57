"""Automatic dataset and run IDs: a readable prefix plus a short hash of everything that changes the output, so that
changed settings give a new folder and the same settings find the old one.

Left out of the hash: the settings that change only *how* the work is done (``OPERATIONAL``), and the horizon
(PRETRAIN.NUM_STEPS, TOTAL_TRAINING_HOURS), so that raising it continues the same run (``horizon``). Run IDs
derived until issue 12 hashed the horizon too; those runs are found again only under a fixed PRETRAIN.ID.
"""
import glob
import hashlib
import json
import re
from pathlib import Path

from pipeline.defaults import SETTINGS, get_key, set_key
from pipeline.init_checkpoint import TOKENIZER_FILES
from pipeline.manifest import as_stored, read_manifest
from pipeline.setting import HORIZON, RESULT, RESULT_IF_CHANGED


def in_identity(setting, value) -> bool:
    """Whether ``setting`` at ``value`` enters the identity of its stage's output: a result setting always, one added
    after IDs existed only when off the value earlier versions used (its default, or its ``legacy_default`` once the
    default changed; see ``pipeline.setting``), so that earlier runs keep their IDs."""
    return setting.identity == RESULT or (setting.identity == RESULT_IF_CHANGED and
                                          as_stored(value) != as_stored(setting.unhashed_value))


def identity_section(cfg, section: str) -> dict:
    """The settings of ``section`` that change its stage's output (``in_identity``), nested as in the config."""
    out: dict = {}
    prefix = section + "."
    for setting in (setting for setting in SETTINGS if setting.key.startswith(prefix)):
        value = as_stored(get_key(cfg, setting.key))
        if in_identity(setting, value):
            set_key(out, setting.key[len(prefix):], value, make=dict)
    return out


def short_hash(payload, length: int = 8) -> str:
    return hashlib.sha256(json.dumps(as_stored(payload), sort_keys=True).encode()).hexdigest()[:length]


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
        entries += [file_stamp(path, str(path.relative_to(root))) for path in sorted(root.rglob("*.txt"))
                    if path.is_file()]
        entries.append([str(root), None, None])
    return entries


def local_inputs_fingerprint(cfg) -> list:
    """The stamp of every file of the local inputs named by path, other than the corpus folders: a tokenizer folder
    (when it is loaded, not trained) and local files or folders given to DATASET.HUGGINGFACE_DATASETS. A hub name
    that is not a local path adds nothing."""
    values = [value for entry in cfg.DATASET.HUGGINGFACE_DATASETS for value in _entry_paths(entry)]
    if cfg.PRETRAIN.INIT_FROM:  # the tokenizer of a starting checkpoint: its files' content, not the weights beside
        return tokenizer_digests(cfg.TOKENIZER.NAME_OR_PATH) + [e for value in values for e in path_stamps(value)]
    values = ([] if cfg.TOKENIZER.TRAIN else [cfg.TOKENIZER.NAME_OR_PATH]) + values
    return [entry for value in values for entry in path_stamps(value)]


def _entry_paths(entry) -> list:
    """The items of a HUGGINGFACE_DATASETS entry that may name local files: the dataset name (a local folder) and
    the subset (a generic builder's data files, a glob expanded here). Never an empty item, which as a path is the
    current directory: stamping it tied the ID to whatever the command's directory held, ``runs/`` included."""
    paths = []
    for value in (str(item) for item in entry[:2]):
        paths += sorted(glob.glob(value, recursive=True)) if glob.has_magic(value) else [value] if value else []
    return paths


def tokenizer_digests(folder) -> list:
    """``[name, sha256]`` of the tokenizer files in ``folder`` (none for a hub name). A starting checkpoint's folder
    is rewritten whenever the run that made it trains further (a first phase's final_model): its tokenizer files
    then get new times but keep their content, and the data made with them stays valid."""
    path = Path(folder)
    names = [name for name in TOKENIZER_FILES + ("special_tokens_map.json",) if (path / name).is_file()]
    return [[f"{folder}/{name}", hashlib.sha256((path / name).read_bytes()).hexdigest()] for name in names]


def path_stamps(value: str, prefix=None) -> list:
    """The stamps of every file under ``value`` when it is a local folder (named ``prefix``, default ``value/``, then
    their path in it), of the file when it is one, else none (a hub name)."""
    path = Path(value)
    prefix = f"{value}/" if prefix is None else prefix
    if path.is_dir():
        return [file_stamp(f, f"{prefix}{f.relative_to(path)}") for f in sorted(path.rglob("*")) if f.is_file()]
    return [file_stamp(path, value)] if path.is_file() else []


def dataset_settings(cfg) -> dict:
    """Everything that determines the prepared dataset's content (inputs, sharding, masking, tokenizer, seed)."""
    return {"DATASET": identity_section(cfg, "DATASET"), "TOKENIZER": identity_section(cfg, "TOKENIZER"),
            "SEED": cfg.SYSTEM.SEED}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "data"


def derive_dataset_id(cfg) -> str:
    names = [_slug(str(entry[0]).split("/")[-1]) for entry in cfg.DATASET.HUGGINGFACE_DATASETS]
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
    """Everything that determines the pretrained weights: the data, the architecture, the training recipe and, for
    a run that starts from existing weights, the stamps of their files (a folder rewritten in place, e.g. the first
    phase's final_model trained further, makes a new run). Not the horizon: see ``horizon``."""
    settings = {"DATASET_ID": cfg.DATASET.ID, "MODEL": identity_section(cfg, "MODEL"),
                "PRETRAIN": identity_section(cfg, "PRETRAIN"), "SEED": cfg.SYSTEM.SEED}
    if cfg.PRETRAIN.INIT_FROM:
        settings["INIT_FROM_FILES"] = path_stamps(cfg.PRETRAIN.INIT_FROM)
    return settings


def horizon(cfg) -> dict:
    """How long the run trains (the settings of role HORIZON): ``{"NUM_STEPS": 23000, "TOTAL_TRAINING_HOURS": 24.0}``.
    A pretrained model is complete once it was trained under a horizon at least this long in both."""
    return {setting.key.split(".")[-1]: as_stored(get_key(cfg, setting.key)) for setting in SETTINGS
            if setting.identity == HORIZON}


def derive_pretrain_id(cfg) -> str:
    start = Path(cfg.PRETRAIN.INIT_FROM).name if cfg.PRETRAIN.INIT_FROM else cfg.MODEL.PRESET or "bert"
    return f"{_slug(start)}-{short_hash(pretrain_settings(cfg))}"
