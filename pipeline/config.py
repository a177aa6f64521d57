"""Load a YAML config (with ``yaml.safe_load``: no object construction) and ``--opts`` overrides onto the defaults,
check every key, and resolve paths and IDs. Every problem is collected first and reported together, one line each,
before any work starts (the CLI then exits with code 2).
"""
import difflib
import os
from pathlib import Path

import yaml
from yacs.config import CfgNode as CN

from pipeline.defaults import (MAPPING_KEYS, NAME_OR_PATH_KEYS, PATH_KEYS, SETTINGS_BY_KEY, get_default_config, get_key,
                               is_local_path, leaf_items, set_key)
from pipeline.errors import ConfigError
from pipeline.hardware import num_workers
from pipeline.init_checkpoint import apply_init_from
from pipeline.own_task_fields import DATA_FILE_FIELDS, FIELDS_BY_NAME, OWN_TASKS_KEY, default_fields
from pipeline.run_ids import derive_dataset_id, derive_pretrain_id
from pipeline.validation import validate

_TYPE_NAMES = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list"}


def _coerce(value, expected_type, key: str, problems: list):
    """``value`` converted to ``expected_type`` where that is lossless, else a problem is recorded. PyYAML reads
    ``1e-3`` as a string (YAML 1.1), so numeric strings are accepted for numeric keys."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected_type is bool and isinstance(value, bool):
        return value
    if expected_type is int and number and (isinstance(value, int) or value.is_integer()):
        return int(value)
    if expected_type is float and (number or isinstance(value, str)):
        try:
            return float(value)
        except ValueError:
            pass
    if expected_type is str and (number or isinstance(value, str)):
        return str(value)
    if expected_type in (list, tuple) and isinstance(value, (list, tuple)):
        return list(value)
    hint = " (YAML reads yes/no/on/off as true/false: quote it, e.g. 'yes')" if expected_type is str and isinstance(
        value, bool) else ""
    problems.append(f"{key}: expected {_TYPE_NAMES.get(expected_type, expected_type.__name__)}, got {value!r}{hint}")
    return None


def _coerce_list(value, default: list, key: str, problems: list, element_type=None):
    value = _coerce(value, list, key, problems)
    if value is None:
        return None
    element_type = type(default[0]) if default else element_type or SETTINGS_BY_KEY[key].element_type
    if element_type is None:
        return value
    if element_type is float and default and all(isinstance(v, int) and not isinstance(v, bool) for v in default):
        element_type = int
    out = []
    for i, item in enumerate(value):
        coerced = _coerce(item, element_type, f"{key}[{i}]", problems)
        if coerced is None:
            return None
        out.append(coerced)
    return out


def _set_coerced(node, key: str, value, default, full: str, problems: list, element_type=None) -> None:
    """``node[key]`` = ``value`` in the type of ``default`` (element by element for a list); a value that does not
    convert is recorded in ``problems`` and leaves the old one."""
    coerced = (_coerce_list(value, default, full, problems, element_type) if isinstance(default, list)
               else _coerce(value, type(default), full, problems))
    if coerced is not None:
        node[key] = coerced


def _merge_fields(task, fields, where: str, problems: list) -> None:
    """One own task's fields onto its current values (``FIELDS_BY_NAME`` says each field's type)."""
    for raw_key, value in fields.items():
        field = FIELDS_BY_NAME.get(str(raw_key))
        if field is None:
            match = difflib.get_close_matches(str(raw_key), list(FIELDS_BY_NAME), n=1, cutoff=0.6)
            hint = f" (did you mean {match[0]}?)" if match else f" (fields: {', '.join(FIELDS_BY_NAME)})"
            problems.append(f"unknown field {where}.{raw_key}{hint}")
            continue
        _set_coerced(task, field.key, value, field.default, f"{where}.{field.key}", problems, field.element_type)


def _merge_named_sections(node, mapping, full: str, problems: list) -> None:
    """A setting of named sections (FINETUNE.OWN_TASKS): each name's fields merge onto that section, created at
    the fields' defaults the first time the name appears."""
    if not isinstance(mapping, dict):
        problems.append(f"{full}: expected a mapping of task names to their fields, got {mapping!r}")
        return
    for raw_name, fields in mapping.items():
        name = str(raw_name)
        if not isinstance(fields, dict):
            problems.append(f"{full}.{name}: expected a section of fields (TYPE, TRAIN_FILE, ...), got {fields!r}")
            continue
        if name not in node:
            node[name] = CN(default_fields())
        _merge_fields(node[name], fields, f"{full}.{name}", problems)


def merge_mapping(cfg, mapping: dict, problems: list, prefix: str = "") -> None:
    """Merge a nested mapping of overrides onto ``cfg``: unknown keys and wrong types become ``problems``."""
    for raw_key, value in mapping.items():
        key = str(raw_key)
        full = f"{prefix}{key}"
        if full in MAPPING_KEYS and key in cfg:
            _merge_named_sections(cfg[key], value, full, problems)
            continue
        if key not in cfg:
            choices = [f"{prefix}{k}" for k in cfg.keys()]
            match = (difflib.get_close_matches(full, choices, n=1, cutoff=0.6) or
                     difflib.get_close_matches(full, [k for k, _ in leaf_items(get_default_config())], n=1, cutoff=0.6))
            hint = f" (did you mean {match[0]}?)" if match else ""
            problems.append(f"unknown config key {full}{hint}")
            continue
        if isinstance(cfg[key], CN):
            if not isinstance(value, dict):
                problems.append(f"{full}: expected a section of keys, got {value!r}")
                continue
            merge_mapping(cfg[key], value, problems, full + ".")
        else:
            _set_coerced(cfg, key, value, cfg[key], full, problems)


def opts_to_mapping(opts, problems: list) -> dict:
    """``["A.B", "1", "C.D", "x"]`` as the nested mapping ``{"A": {"B": 1}, "C": {"D": "x"}}``."""
    if len(opts) % 2:
        problems.append(f"--opts takes KEY VALUE pairs; {opts[-1]!r} has no value")
        opts = opts[:-1]
    mapping: dict = {}
    for key, text in zip(opts[0::2], opts[1::2]):
        node = mapping
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                problems.append(f"--opts: {key} conflicts with an earlier override")
                break
        else:
            try:  # a YAML scalar or flow list: 100, False, [1, 2], runs/x
                node[last] = yaml.safe_load(text)
            except yaml.YAMLError:
                node[last] = text
    return mapping


def load_yaml_file(path, problems: list) -> dict:
    path = Path(path)
    if not path.is_file():
        problems.append(f"config file not found: {path} (give a path to a YAML file, e.g. configs/quickstart.yaml)")
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problems.append(f"malformed YAML in {path}{where}: {getattr(e, 'problem', None) or e}")
        return {}
    except UnicodeDecodeError:
        problems.append(f"config file {path} is not UTF-8 text")
        return {}
    if not isinstance(data, (dict, type(None))):
        problems.append(f"{path}: the top level of a config must be a mapping of sections, got {type(data).__name__}")
        return {}
    return data or {}


def build_config(config_path=None, opts=(), base_dir=None, prepare_inputs=None, extra_checks=()):
    """Defaults, then the YAML file, then ``opts``; checked and resolved. Raises ConfigError listing every problem.

    Relative paths resolve against ``base_dir`` (default: the current directory). ``prepare_inputs(cfg)`` runs
    before the checks (it may create input folders, e.g. the demo corpus); each of ``extra_checks`` is a function
    ``cfg -> list of problems`` run after the checks here (the stages' own checks, see ``orchestration.stages``).
    """
    problems: list = []
    cfg = get_default_config()
    if config_path is not None:
        mapping = load_yaml_file(config_path, problems)
        if problems:  # the file could not be read: checking the defaults instead would add lines ("the dataset
            # stage has no input") about settings the file may well hold
            raise ConfigError(problems)
        merge_mapping(cfg, mapping, problems)
    merge_mapping(cfg, opts_to_mapping(list(opts), problems), problems)
    resolve_paths(cfg, base_dir)
    problems += apply_init_from(cfg)  # the starting checkpoint's architecture and tokenizer, before the checks
    if prepare_inputs is not None and not problems:
        prepare_inputs(cfg)
    # The checks run even after an unknown key or a wrong type (those keep their default), so that one run reports
    # every problem of the file.
    problems += validate(cfg)
    for check in extra_checks:
        problems += check(cfg)
    if problems:
        raise ConfigError(problems)
    resolve_auto_values(cfg)
    cfg.freeze()
    return cfg


def _absolute(value: str, base: Path) -> str:
    return str((base / os.path.expanduser(value)).resolve()) if value else value


def resolve_paths(cfg, base_dir=None) -> None:
    """Make every path key absolute, relative paths resolving against ``base_dir`` (default: the current dir)."""
    base = Path(base_dir or os.getcwd())
    for key in PATH_KEYS:
        value = get_key(cfg, key)
        set_key(cfg, key, [_absolute(v, base) for v in value] if isinstance(value, list) else _absolute(value, base))
    for key in NAME_OR_PATH_KEYS:
        value = get_key(cfg, key)
        if value and is_local_path(value, base):
            set_key(cfg, key, _absolute(value, base))
    for task in get_key(cfg, OWN_TASKS_KEY).values():
        for field in DATA_FILE_FIELDS:
            task[field] = _absolute(task[field], base)


def resolve_auto_values(cfg) -> None:
    """Fill the "auto" values: worker count, dataset and run IDs. GPU count stays -1 (= all visible) here;
    stages resolve it where they launch work, so that reading a config never initialises CUDA."""
    cfg.SYSTEM.NUM_WORKERS = num_workers(cfg)
    if not cfg.DATASET.ID:
        cfg.DATASET.ID = derive_dataset_id(cfg)
    if not cfg.PRETRAIN.ID:
        cfg.PRETRAIN.ID = derive_pretrain_id(cfg)


def load_resolved_config(path):
    """Read back a config that ``build_config`` resolved and a stage wrote (no re-resolution, IDs kept)."""
    cfg = get_default_config()
    problems: list = []
    merge_mapping(cfg, load_yaml_file(path, problems), problems)
    if problems:
        raise ConfigError(problems)
    cfg.freeze()
    return cfg
