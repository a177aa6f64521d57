"""The cheap checks of the FINETUNE section (no torch, no network), one line per problem: task names, grids,
STILT, GPU groups and how each batch splits over them, the model folder, the GLUE files and the own tasks' files
(their contents are checked when the stage reads them, before any job starts)."""
from pathlib import Path

from finetuning.glue_data import local_task_files
from finetuning.glue_tasks import GLUE_TASKS, canonical_task_name, predicting_task
from finetuning.search_plan import plan_task_jobs
from finetuning.search_scheduler import batch_split_problems, cpu_process_problems
from finetuning.search_tasks import search_task, task_name
from pipeline.defaults import SETTINGS_BY_KEY, is_local_path
from pipeline.errors import ConfigError
from pipeline.hardware import fp16_problems, gpus_may_be_used
from pipeline.init_checkpoint import folder_positions
from pipeline.own_task_fields import DATA_FILE_FIELDS


def _check_gpu_list(cfg, problems: list) -> None:
    groups = cfg.FINETUNE.MULTIPROCESS_GPU_LIST
    seen = set()
    for i, group in enumerate(groups):
        if not isinstance(group, (list, tuple)) or not group or not all(
                isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in group):
            problems.append(f"FINETUNE.MULTIPROCESS_GPU_LIST[{i}] must be a non-empty list of GPU indices, e.g. [0, 1];"
                            f" got {group!r}")
            continue
        if seen & set(group):
            problems.append(f"FINETUNE.MULTIPROCESS_GPU_LIST: GPU {sorted(seen & set(group))[0]} is in two groups")
        seen |= set(group)
        _check_batch_split(cfg, len(group), f" and the {len(group)} GPUs of MULTIPROCESS_GPU_LIST[{i}]", problems)
    if not groups:
        _check_batch_split(cfg, 1, "", problems)


def _check_batch_split(cfg, gpus: int, where: str, problems: list) -> None:
    accumulation = cfg.FINETUNE.GRADIENT_ACCUMULATION_STEPS
    problems += batch_split_problems(cfg, gpus * accumulation, f"GRADIENT_ACCUMULATION_STEPS {accumulation}{where}"
                                                               f" (each GPU and each accumulated batch takes an equal"
                                                               f" share)")


def _check_stilt_source_config(cfg, problems: list) -> None:
    wanted = list(cfg.FINETUNE.STILT.SOURCE_CONFIG)
    if not wanted or not cfg.FINETUNE.STILT.ENABLED:
        return
    source = task_name(cfg, cfg.FINETUNE.STILT.SOURCE)
    grid = {job.config_key for job in plan_task_jobs(cfg, source)}
    if len(wanted) != 3 or tuple(wanted) not in grid:
        choices = ", ".join(f"[{lr:g}, {bs}, {ep}]" for lr, bs, ep in sorted(grid))
        given = ", ".join(f"{value:g}" if isinstance(value, (int, float)) else repr(value) for value in wanted)
        problems.append(f"FINETUNE.STILT.SOURCE_CONFIG = [{given}] is not a [learning rate, batch size, epochs] of the"
                        f" {source} grid ({choices}); use one of those, or [] for the best")


def _check_grids(cfg, problems: list) -> None:
    if not cfg.FINETUNE.SEEDS:
        problems.append("FINETUNE.SEEDS is empty: give at least one seed, e.g. [42]")
    for size in ("LARGE", "SMALL"):  # their values' ranges are the table's (pipeline.validation)
        for key in ("LEARNING_RATES", "BATCH_SIZES", "EPOCHS"):
            if not cfg.FINETUNE.SEARCH[size][key]:
                problems.append(f"FINETUNE.SEARCH.{size}.{key} is empty: give at least one value")


def _check_positions(cfg, tasks: list, problems: list) -> None:
    """FINETUNE.MAX_SEQ_LENGTH, and that of each own task being finetuned, within the positions of the model: the
    local FINETUNE.MODEL_NAME_OR_PATH's config.json, or with "" MODEL.MAX_POSITION_EMBEDDINGS of this run's
    pretraining (PRETRAIN.INIT_FROM's already written there), the rule DATASET.MAX_SEQ_LENGTH follows. A hub model is
    checked by run_glue.py once it is loaded."""
    model = cfg.FINETUNE.MODEL_NAME_OR_PATH
    if not model:
        positions = cfg.MODEL.MAX_POSITION_EMBEDDINGS
        source = f"MODEL.MAX_POSITION_EMBEDDINGS = {positions} (the model this run pretrains)"
    elif is_local_path(model):
        positions = folder_positions(model)
        source = f"the {positions} positions of {model} (max_position_embeddings in its config.json)"
    else:
        return
    lengths = [("FINETUNE.MAX_SEQ_LENGTH", cfg.FINETUNE.MAX_SEQ_LENGTH)] + [
        (f"FINETUNE.OWN_TASKS.{name}.MAX_SEQ_LENGTH", own.MAX_SEQ_LENGTH)
        for name, own in cfg.FINETUNE.OWN_TASKS.items() if name in tasks and own.MAX_SEQ_LENGTH]
    for key, length in lengths:
        if positions is not None and length > positions:
            problems.append(f"{key} = {length} exceeds {source}: use {positions} or less")


def _check_names(cfg, problems: list) -> list:
    tasks, ft = [], cfg.FINETUNE
    for key, names in (("FINETUNE.TASKS", ft.TASKS), ("FINETUNE.SEARCH.LARGE.TASKS", ft.SEARCH.LARGE.TASKS),
                       ("FINETUNE.STILT.TARGETS", ft.STILT.TARGETS), ("FINETUNE.STILT.SOURCE", [ft.STILT.SOURCE])):
        for name in names:
            try:
                name = task_name(cfg, name)
            except ConfigError as e:
                problems.append(f"{key}: {e}")
                continue
            if name in GLUE_TASKS and GLUE_TASKS[name].train is None:
                problems.append(f"{key}: {name} is not finetuned ({predicting_task(name)} jobs predict it); remove it")
            elif key == "FINETUNE.TASKS":
                tasks.append(name)
    if not cfg.FINETUNE.TASKS:
        problems.append("FINETUNE.TASKS is empty: list GLUE tasks or own tasks, or set FINETUNE.ENABLED False")
    return tasks


def _check_own_tasks(cfg, tasks: list, problems: list) -> None:
    """An own task is not named like a GLUE task, and the files of each one being finetuned exist."""
    for name, own in cfg.FINETUNE.OWN_TASKS.items():
        try:
            glue = canonical_task_name(name)
        except ConfigError:
            glue = None
        if glue is not None:
            problems.append(f"FINETUNE.OWN_TASKS.{name}: {glue} is a GLUE task; name your own task otherwise (e.g."
                            f" my_{name.lower()}), or use the GLUE task itself")
        elif name in tasks:
            for field in DATA_FILE_FIELDS:
                if own[field] and not Path(own[field]).is_file():
                    problems.append(f"FINETUNE.OWN_TASKS.{name}.{field}: file not found: {own[field]}")


def _stilt_was_set(cfg) -> bool:
    """Whether the config names a STILT source or targets of its own: the paper's default (MNLI to RTE, MRPC,
    STS-B) simply does not apply to a task list without MNLI, while a source the user chose must be finetuned."""
    stilt = cfg.FINETUNE.STILT
    return [stilt.SOURCE, list(stilt.TARGETS)] != [SETTINGS_BY_KEY[f"FINETUNE.STILT.{key}"].default
                                                   for key in ("SOURCE", "TARGETS")]


def _check_stilt_types(cfg, tasks: list, problems: list) -> None:
    """STILT carries a model from one task to another of the same kind: sentence-level (classification and
    regression: the paper starts STS-B from MNLI, with a fresh head) or token-level (a tagger from a tagger)."""
    stilt = cfg.FINETUNE.STILT
    source = search_task(cfg, stilt.SOURCE)
    for name in stilt.TARGETS:
        target = search_task(cfg, name)
        if target.name in tasks and target.name != source.name and target.is_token_level != source.is_token_level:
            problems.append(f"FINETUNE.STILT.TARGETS: {target.name} is {target.type} but the STILT.SOURCE"
                            f" {source.name} is {source.type}; STILT starts a token task from a token task, and a"
                            f" sentence task (classification, regression) from a sentence task")


def _check_glue_dir(glue_dir: str, tasks: list, problems: list) -> None:
    for task_name in tasks:
        task = GLUE_TASKS[task_name]
        folder = Path(glue_dir) / task.folder
        if not folder.is_dir():
            problems.append(f"FINETUNE.GLUE_DIR: missing {folder} (task {task_name}; add its official files or remove"
                            f" {task_name} from FINETUNE.TASKS)")
            continue
        for path in local_task_files(glue_dir, task):
            if not path.is_file():
                problems.append(f"FINETUNE.GLUE_DIR: missing {path} (task {task_name})")


def validate_config(cfg) -> list:
    """Cheap checks of the FINETUNE section, one line per problem (no torch, no network)."""
    if not cfg.FINETUNE.ENABLED:
        return []
    problems = list(fp16_problems(cfg.FINETUNE.PRECISION, gpus_may_be_used(cfg), "FINETUNE.PRECISION"))
    tasks = _check_names(cfg, problems)
    _check_own_tasks(cfg, tasks, problems)
    stilt = cfg.FINETUNE.STILT
    if stilt.ENABLED and tasks and not problems:
        source = task_name(cfg, stilt.SOURCE)
        targets = {task_name(cfg, t) for t in stilt.TARGETS} & set(tasks)
        if targets and source not in tasks and _stilt_was_set(cfg):
            problems.append(f"FINETUNE.STILT.SOURCE = {stilt.SOURCE} is not in FINETUNE.TASKS: add it, or set"
                            f" FINETUNE.STILT.ENABLED False")
        elif targets:
            _check_stilt_types(cfg, tasks, problems)
    _check_grids(cfg, problems)
    if not problems:
        _check_stilt_source_config(cfg, problems)
    _check_gpu_list(cfg, problems)
    if cfg.SYSTEM.NUM_GPUS == 0 and cfg.SYSTEM.PROCESSES_PER_NODE > 1:
        problems += cpu_process_problems(cfg, cfg.SYSTEM.PROCESSES_PER_NODE)
    model = cfg.FINETUNE.MODEL_NAME_OR_PATH
    if model and is_local_path(model) and not Path(model).is_dir():
        problems.append(f"FINETUNE.MODEL_NAME_OR_PATH: folder does not exist: {model}")
    _check_positions(cfg, tasks, problems)
    if cfg.FINETUNE.GLUE_DIR and Path(cfg.FINETUNE.GLUE_DIR).is_dir():
        _check_glue_dir(cfg.FINETUNE.GLUE_DIR, [task for task in tasks if task in GLUE_TASKS], problems)
    return problems
