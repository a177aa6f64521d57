"""The finetune stage: the GLUE hyperparameter search with seeds, STILT, and AX, as one job per child process.

    finetune/<TASK>/<JOB>/               job.json, eval_results.json, predictions_*.tsv, job.log (model/ for STILT)
    finetune/<TASK>/.cache/              tokenized splits shared by the task's jobs
    finetune_random_init/<TASK>/<JOB>/   the same grid from random weights (FINETUNE.RANDOM_INIT_BASELINE)

Jobs run one per GPU group of ``FINETUNE.MULTIPROCESS_GPU_LIST`` in parallel, else one per GPU of the node in
parallel, else one at a time on the CPU (as ``SYSTEM.PROCESSES_PER_NODE`` processes when > 1): ``job_slots``.
STILT targets wait for the source task's search and start from its best job (``finetuning.search.choose_best``).
The console gets a line when each job starts and ends (``[k/N] TASK lr=… bs=… ep=… seed=…``, with the dev metric,
the time and the search's ETA) and a progress line every FINETUNE.PROGRESS_SECONDS inside a job; the rest goes to
the job's ``job.log``. A failed job runs again (FINETUNE.RETRIES) before it is recorded as failed; the stage fails
only when a task is left without any completed job. A job killed mid-way resumes from its checkpoint
(FINETUNE.SAVE_STEPS) on the next run. Top-level imports stay light: the runner imports this module for status and
validation.
"""
import os
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from finetuning.glue_data import HUB_DATASET, local_task_files
from finetuning.glue_tasks import GLUE_TASKS, canonical_task_name, predicting_task
from finetuning.jobs import (LOG_FILE, claim, expected_record, is_completed, log_tail, release, resumable_checkpoint,
                             run_job)
from finetuning.progress import PROGRESS_FILE, JobWatcher, SearchProgress, format_duration
from finetuning.search import best_job, plan_task_jobs, primary_score
from pipeline import layout
from pipeline.defaults import SETTINGS_BY_KEY, get_key
from pipeline.errors import ConfigError, DataError, ExtremeBertError
from pipeline.hardware import gpus_may_be_used
from pipeline.manifest import StageStatus
from pipeline.run_ids import file_stamp

CACHE_SUBDIR = ".cache"


class FinetuneJobsFailed(ExtremeBertError):
    """A task has no completed job: every job of it that ran failed (each was retried FINETUNE.RETRIES times)."""


def _tasks(cfg) -> list:
    return [canonical_task_name(name) for name in cfg.FINETUNE.TASKS]


def _stilt_targets(cfg, tasks) -> set:
    """Targets that start from the source model: only those being finetuned, and only with the source present."""
    stilt = cfg.FINETUNE.STILT
    if not stilt.ENABLED or canonical_task_name(stilt.SOURCE) not in tasks:
        return set()
    return {canonical_task_name(name) for name in stilt.TARGETS} & set(tasks) - {canonical_task_name(stilt.SOURCE)}


def _trees(cfg) -> list:
    """(root folder, random_init) for every search this config asks for."""
    trees = [(layout.finetune_dir(cfg), False)]
    if cfg.FINETUNE.RANDOM_INIT_BASELINE:
        trees.append((layout.random_init_finetune_dir(cfg), True))
    return trees


def _looks_local(model: str) -> bool:
    return os.path.isabs(model) or model.startswith(".") or Path(model).exists()


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


def data_stamps(glue_dir: str, task_name: str) -> list:
    """Size and mtime of every GLUE file a job of ``task_name`` reads (train, dev, test, and the test files of the
    tasks it also predicts); none for the Hub, which the ``data`` setting names."""
    if not glue_dir:
        return []
    task = GLUE_TASKS[task_name]
    paths = [path for owner in [task, *task.riders] for path in local_task_files(glue_dir, owner)]
    return [file_stamp(path, str(path.relative_to(glue_dir))) for path in paths]


def job_settings(cfg, random_init: bool) -> dict:
    """Everything besides the grid values and the input files that changes a job's result; a completed job counts
    only if they match."""
    ft = cfg.FINETUNE
    return {"max_seq_length": ft.MAX_SEQ_LENGTH, "weight_decay": ft.WEIGHT_DECAY, "warmup_ratio": ft.WARMUP_RATIO,
            "lr_scheduler": ft.LR_SCHEDULER, "max_train_samples": ft.MAX_TRAIN_SAMPLES,
            "max_eval_samples": ft.MAX_EVAL_SAMPLES, "data": ft.GLUE_DIR or HUB_DATASET, "random_init": random_init,
            "malformed_rows": ft.MALFORMED_ROWS, **_added_settings(cfg)}


# Settings added after job records existed, under their name in the record: they enter it only when off their
# default, so that the jobs completed before they existed still count.
_ADDED_SETTINGS = {"warmup_steps": "FINETUNE.WARMUP_STEPS", "max_grad_norm": "FINETUNE.MAX_GRAD_NORM",
                   "gradient_accumulation_steps": "FINETUNE.GRADIENT_ACCUMULATION_STEPS"}


def _added_settings(cfg) -> dict:
    values = {name: get_key(cfg, key) for name, key in _ADDED_SETTINGS.items()}
    return {name: value for name, value in values.items() if value != SETTINGS_BY_KEY[_ADDED_SETTINGS[name]].default}


class _Search:
    """The planned jobs of one tree and the record each must carry to count as done."""

    def __init__(self, cfg, root: Path, random_init: bool):
        self.cfg, self.root, self.random_init = cfg, Path(root), random_init
        self.model = layout.finetune_model_path(cfg)
        self.settings = job_settings(cfg, random_init)
        self.tasks = _tasks(cfg)
        self.targets = _stilt_targets(cfg, self.tasks)
        self.source = canonical_task_name(cfg.FINETUNE.STILT.SOURCE)
        self.jobs = {task: plan_task_jobs(cfg, task) for task in self.tasks}

    def job_dir(self, job) -> Path:
        return self.root / job.task / job.name

    def expected(self, job, init_from=None) -> dict:
        """The record a completed ``job`` must carry; the inputs are stamped now, so that a file changed since the
        job ran makes it pending. A STILT target's starting model is the source job's saved model."""
        start = str(self.root / init_from / "model") if init_from else self.model
        inputs = {"model": model_stamps(start), "data": data_stamps(self.cfg.FINETUNE.GLUE_DIR, job.task)}
        return expected_record(job, self.model, init_from, self.settings, inputs)

    def is_done(self, job, init_from=None) -> bool:
        return is_completed(self.job_dir(job), self.expected(job, init_from))

    def best_source(self):
        """The best completed job of the STILT source's search (of STILT.SOURCE_CONFIG when set), or None."""
        task = GLUE_TASKS[self.source]
        wanted = tuple(self.cfg.FINETUNE.STILT.SOURCE_CONFIG)
        jobs = [job for job in self.jobs[self.source] if not wanted or job.config_key == wanted]
        return best_job(self.root / self.source, jobs, task.primary_metric, self.is_done)

    def stilt_init(self):
        """``init_from`` for the targets (``SOURCE/JOB``): the best completed source job, or None when there is none.

        The stage asks only once the source's jobs have all been tried; a source job that failed and later
        succeeds may change the best, and the targets then rerun from the new one."""
        best = self.best_source()
        return f"{best.task}/{best.name}" if best else None

    def pending(self, tasks, init_from=None) -> list:
        return [job for task in tasks for job in self.jobs[task] if not self.is_done(job, init_from)]

    def counts(self) -> tuple:
        """(done, planned) over every job, STILT targets included."""
        init = self.stilt_init() if self.targets else None
        done = total = 0
        for task, jobs in self.jobs.items():
            stilt = task in self.targets
            for job in jobs:
                total += 1
                done += (init is not None or not stilt) and self.is_done(job, init if stilt else None)
        return done, total


def finetune_status(cfg) -> StageStatus:
    """Complete when every planned job of the current grid has completed for the current model and settings."""
    searches = [_Search(cfg, root, random_init) for root, random_init in _trees(cfg)]
    done = total = 0
    for search in searches:
        d, t = search.counts()
        done, total = done + d, total + t
    reads = [layout.finetune_model_path(cfg), cfg.FINETUNE.GLUE_DIR or f"hub:{HUB_DATASET}"]
    writes = [str(search.root) for search in searches]
    detail = "complete" if done == total else ("not run yet" if done == 0 else f"{done}/{total} jobs completed")
    return StageStatus(reads=reads, writes=writes, complete=done == total, clear_paths=writes,
                       detail=f"{detail} ({total} jobs)" if done == total else detail)


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
    for size in sorted({*cfg.FINETUNE.SEARCH.LARGE.BATCH_SIZES, *cfg.FINETUNE.SEARCH.SMALL.BATCH_SIZES}):
        if size % (gpus * accumulation):
            problems.append(f"FINETUNE: batch size {size} is not divisible by GRADIENT_ACCUMULATION_STEPS"
                            f" {accumulation}{where} (each GPU and each accumulated batch takes an equal share)")


def _check_stilt_source_config(cfg, problems: list) -> None:
    wanted = list(cfg.FINETUNE.STILT.SOURCE_CONFIG)
    if not wanted or not cfg.FINETUNE.STILT.ENABLED:
        return
    source = canonical_task_name(cfg.FINETUNE.STILT.SOURCE)
    grid = {job.config_key for job in plan_task_jobs(cfg, source)}
    if len(wanted) != 3 or tuple(wanted) not in grid:
        choices = ", ".join(f"[{lr:g}, {bs}, {ep}]" for lr, bs, ep in sorted(grid))
        given = ", ".join(f"{value:g}" if isinstance(value, (int, float)) else repr(value) for value in wanted)
        problems.append(f"FINETUNE.STILT.SOURCE_CONFIG = [{given}] is not a [learning rate, batch size, epochs] of the"
                        f" {source} grid ({choices}); use one of those, or [] for the best")


def _cpu_process_problems(cfg, processes: int) -> list:
    """Each job's batch is split evenly over its ``processes`` CPU processes."""
    sizes = {*cfg.FINETUNE.SEARCH.LARGE.BATCH_SIZES, *cfg.FINETUNE.SEARCH.SMALL.BATCH_SIZES}
    return [f"FINETUNE: batch size {size} is not divisible by SYSTEM.PROCESSES_PER_NODE = {processes} (on CPU each job"
            f" runs as that many processes, each taking an equal share)" for size in sorted(sizes) if size % processes]


def job_slots(cfg) -> list:
    """Where jobs run side by side, as ``(GPU group or None, processes per job)``: the MULTIPROCESS_GPU_LIST
    groups; else one job per GPU of the node, in parallel (every GPU in use); else one job at a time on the CPU,
    as SYSTEM.PROCESSES_PER_NODE processes (torchrun, gloo) when that is > 1."""
    groups = [list(group) for group in cfg.FINETUNE.MULTIPROCESS_GPU_LIST]
    if groups:
        return [(group, len(group)) for group in groups]
    from pipeline.hardware import resolve_num_gpus

    gpus = resolve_num_gpus(cfg)
    if gpus > 1:
        return [([gpu], 1) for gpu in range(gpus)]
    processes = 1 if gpus else max(1, cfg.SYSTEM.PROCESSES_PER_NODE)
    problems = _cpu_process_problems(cfg, processes)
    if problems:
        raise ConfigError(problems[0])
    return [(None, processes)]


def _check_grids(cfg, problems: list) -> None:
    if not cfg.FINETUNE.SEEDS:
        problems.append("FINETUNE.SEEDS is empty: give at least one seed, e.g. [42]")
    for size in ("LARGE", "SMALL"):
        grid = cfg.FINETUNE.SEARCH[size]
        for key, low in (("LEARNING_RATES", 0), ("BATCH_SIZES", 1), ("EPOCHS", 1)):
            values = list(grid[key])
            if not values:
                problems.append(f"FINETUNE.SEARCH.{size}.{key} is empty: give at least one value")
            elif any(v < low or (low == 0 and v <= 0) for v in values):
                problems.append(f"FINETUNE.SEARCH.{size}.{key} = {values} must hold values"
                                f" {'> 0' if low == 0 else f'>= {low}'}")


def _check_names(cfg, problems: list) -> list:
    tasks = []
    for key, names in (("FINETUNE.TASKS", cfg.FINETUNE.TASKS), ("FINETUNE.SEARCH.LARGE.TASKS",
                                                                 cfg.FINETUNE.SEARCH.LARGE.TASKS),
                       ("FINETUNE.STILT.TARGETS", cfg.FINETUNE.STILT.TARGETS),
                       ("FINETUNE.STILT.SOURCE", [cfg.FINETUNE.STILT.SOURCE])):
        for name in names:
            try:
                canonical = canonical_task_name(name)
            except ConfigError as e:
                problems.append(f"{key}: {e}")
                continue
            if GLUE_TASKS[canonical].train is None:
                problems.append(f"{key}: {canonical} is not finetuned ({predicting_task(canonical)} jobs predict it);"
                                f" remove it")
            elif key == "FINETUNE.TASKS":
                tasks.append(canonical)
    if not cfg.FINETUNE.TASKS:
        problems.append("FINETUNE.TASKS is empty: list GLUE tasks, or set FINETUNE.ENABLED False")
    return tasks


def _check_glue_dir(glue_dir: str, tasks: list, problems: list) -> None:
    for task_name in tasks:
        task = GLUE_TASKS[task_name]
        folder = Path(glue_dir) / task.folder
        if not folder.is_dir():
            problems.append(f"FINETUNE.GLUE_DIR: missing {folder} (task {task_name}; add its official files or remove"
                            f" {task_name} from FINETUNE.TASKS)")
            continue
        needed = [path for owner in [task, *task.riders] for path in local_task_files(glue_dir, owner)]
        for path in needed:
            if not path.is_file():
                problems.append(f"FINETUNE.GLUE_DIR: missing {path} (task {task_name})")


def validate_config(cfg) -> list:
    """Cheap checks of the FINETUNE section, one line per problem (no torch, no network)."""
    if not cfg.FINETUNE.ENABLED:
        return []
    problems: list = []
    if cfg.FINETUNE.PRECISION == "fp16" and not gpus_may_be_used(cfg):
        problems.append("FINETUNE.PRECISION = fp16 needs a GPU (every job would fail on this machine); use bf16, fp32"
                        " or auto")
    tasks = _check_names(cfg, problems)
    stilt = cfg.FINETUNE.STILT
    if stilt.ENABLED and tasks and not problems:
        source = canonical_task_name(stilt.SOURCE)
        targets = {canonical_task_name(t) for t in stilt.TARGETS} & set(tasks)
        if targets and source not in tasks:
            problems.append(f"FINETUNE.STILT.SOURCE = {stilt.SOURCE} is not in FINETUNE.TASKS: add it, or set"
                            f" FINETUNE.STILT.ENABLED False")
    _check_grids(cfg, problems)
    if not problems:
        _check_stilt_source_config(cfg, problems)
    _check_gpu_list(cfg, problems)
    if cfg.SYSTEM.NUM_GPUS == 0 and cfg.SYSTEM.PROCESSES_PER_NODE > 1:
        problems += _cpu_process_problems(cfg, cfg.SYSTEM.PROCESSES_PER_NODE)
    model = cfg.FINETUNE.MODEL_NAME_OR_PATH
    if model and _looks_local(model) and not Path(model).is_dir():
        problems.append(f"FINETUNE.MODEL_NAME_OR_PATH: folder does not exist: {model}")
    if cfg.FINETUNE.GLUE_DIR and Path(cfg.FINETUNE.GLUE_DIR).is_dir():
        _check_glue_dir(cfg.FINETUNE.GLUE_DIR, tasks, problems)
    return problems


# ----------------------------------------------------------------------------------------------------------------
# Running the search


def _job_arguments(cfg, job, job_dir: Path, model: str, random_init: bool, save_model: bool, processes: int,
                   resume: bool = False) -> list:
    ft = cfg.FINETUNE
    per_device = job.batch_size // (processes * ft.GRADIENT_ACCUMULATION_STEPS)
    arguments = ["--model_name_or_path", model, "--task_name", job.task, "--output_dir", str(job_dir),
                 "--do_train", "--do_eval", "--do_predict",
                 "--max_seq_length", str(ft.MAX_SEQ_LENGTH), "--per_device_train_batch_size", str(per_device),
                 "--gradient_accumulation_steps", str(ft.GRADIENT_ACCUMULATION_STEPS),
                 "--per_device_eval_batch_size", str(ft.EVAL_BATCH_SIZE),
                 "--learning_rate", repr(job.learning_rate), "--weight_decay", repr(ft.WEIGHT_DECAY),
                 "--max_grad_norm", repr(ft.MAX_GRAD_NORM),
                 "--num_train_epochs", str(job.epochs), "--lr_scheduler_type", ft.LR_SCHEDULER,
                 "--warmup_ratio", repr(ft.WARMUP_RATIO), "--seed", str(job.seed), "--precision", ft.PRECISION,
                 "--max_train_samples", str(ft.MAX_TRAIN_SAMPLES), "--max_eval_samples", str(ft.MAX_EVAL_SAMPLES),
                 "--tokenized_cache_dir", str(layout.finetune_dir(cfg) / job.task / CACHE_SUBDIR),
                 "--malformed_rows", ft.MALFORMED_ROWS,
                 "--logging_steps", "0.1", "--progress_file", str(job_dir / PROGRESS_FILE)]  # ten loss lines per job
    if ft.WARMUP_STEPS:
        arguments += ["--warmup_steps", str(ft.WARMUP_STEPS)]
    if ft.SAVE_STEPS:  # the newest checkpoint only: a rerun resumes a killed job from it
        arguments += ["--save_strategy", "steps", "--save_steps", str(ft.SAVE_STEPS), "--save_total_limit", "1"]
    else:
        arguments += ["--save_strategy", "no"]
    if not resume:
        arguments.append("--overwrite_output_dir")
    if cfg.WANDB.ENABLED:
        tree = " random-init" if random_init else ""
        arguments += ["--report_to", "wandb", "--run_name", f"{job.task}/{job.name}{tree}"]
    if ft.GLUE_DIR:
        arguments += ["--data_dir", ft.GLUE_DIR]
    if ft.GROUP_BY_LENGTH:
        arguments.append("--group_by_length")
    if random_init:
        arguments.append("--random_init")
    if save_model:
        arguments.append("--save_model")
    if cfg.SYSTEM.NUM_GPUS == 0:
        arguments.append("--use_cpu")
    return arguments


def _wandb_env(cfg, search, task: str) -> dict:
    """The child's wandb settings: WANDB.* of the config, and one group per task and tree, so that the seeds and
    configurations of a task sit together (run_glue.py reads them as the HF Trainer's wandb callback does)."""
    if not cfg.WANDB.ENABLED:
        return {}
    env = {"WANDB_PROJECT": cfg.WANDB.PROJECT, "WANDB_MODE": cfg.WANDB.MODE, "WANDB_JOB_TYPE": "finetune",
           "WANDB_RUN_GROUP": f"{cfg.PRETRAIN.ID}/{search.root.name}/{task}"}
    if cfg.WANDB.ENTITY:
        env["WANDB_ENTITY"] = cfg.WANDB.ENTITY
    return env


def _pretokenize(cfg, tasks) -> dict:
    """Tokenize each task's splits once, before the jobs, so that every job loads them and data errors surface
    before any training; returns each task's number of training rows (what the ETA counts in)."""
    from finetuning.features import load_encoded, tokenizer_fingerprint
    from finetuning.run_glue import load_tokenizer

    tokenizer = load_tokenizer(layout.finetune_model_path(cfg))
    key = tokenizer_fingerprint(tokenizer)
    ft = cfg.FINETUNE
    rows = {}
    for name in tasks:
        task = GLUE_TASKS[name]
        cache = str(layout.finetune_dir(cfg) / name / CACHE_SUBDIR)
        splits = [(task, "train", "train", ft.MAX_TRAIN_SAMPLES)]
        splits += [(task, "dev", dev, ft.MAX_EVAL_SAMPLES) for dev in task.dev]
        splits += [(owner, "test", test, 0) for owner in [task, *task.riders] for test in owner.test]
        started = time.time()
        for split_task, kind, split, limit in splits:
            encoded = load_encoded(split_task, kind, split, tokenizer, ft.MAX_SEQ_LENGTH, ft.GLUE_DIR, limit, cache,
                                   tokenizer_key=key, malformed_rows=ft.MALFORMED_ROWS)
            rows.setdefault(name, len(encoded))  # the first split is train
        print(f"tokenized {name} ({len(splits)} splits, {rows[name]} training rows) in {time.time() - started:.1f}s",
              flush=True)
    return rows


def _print_failure(prefix: str, record: dict, job_dir: Path) -> None:
    print(f"{prefix} FAILED after {format_duration(record['wall_time_s'])}: {record['error']}; the last lines of"
          f" {job_dir / LOG_FILE}:", flush=True)
    for line in log_tail(job_dir):
        print(f"    | {line}", flush=True)


class _Scheduler:
    """Runs jobs on the slots of ``job_slots``, one job per slot at a time. A failed job is run again up to
    FINETUNE.RETRIES times (from scratch); a job an earlier run left unfinished resumes from its checkpoint."""

    def __init__(self, cfg, progress: SearchProgress):
        slots = job_slots(cfg)
        self.cfg, self.progress = cfg, progress
        self.free = queue.Queue()
        for slot in slots:
            self.free.put(slot)
        self.workers = len(slots)
        self.failed = []  # (search, job, record) of jobs that failed every attempt
        self.finished = 0

    def run(self, search: _Search, jobs: list, init_from=None, save_tasks=()) -> None:
        model = self.model_for(search, init_from)

        def one(job):
            slot = self.free.get()
            try:
                self._run_one(search, job, model, init_from, job.task in save_tasks, slot)
            finally:
                self.free.put(slot)

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            list(pool.map(one, jobs))

    @staticmethod
    def model_for(search: _Search, init_from) -> str:
        if init_from is None:
            return search.model
        model = search.root / init_from / "model"
        if not (model / "config.json").is_file():
            raise DataError(f"STILT: the best {search.source} job has no saved model at {model}; delete"
                            f" {search.root / init_from} and rerun to train it again")
        return str(model)

    def _run_one(self, search, job, model, init_from, save_model, slot) -> None:
        key = (job, search.random_init)
        prefix = self.progress.prefix(key)
        job_dir = search.job_dir(job)
        if not claim(job_dir):
            print(f"{prefix} skipped: another process is running it", flush=True)
            self.progress.finish(key, None)
            return
        try:
            record = self._attempts(search, job, model, init_from, save_model, slot, prefix)
        finally:
            release(job_dir)
        self.finished += 1
        if record["status"] == "completed":
            self.progress.finish(key, record["wall_time_s"])
            metric = GLUE_TASKS[job.task].primary_metric
            score = primary_score(job_dir, metric)
            print(f"{prefix} done: {metric} {'n/a' if score is None else f'{score:.4f}'} in"
                  f" {format_duration(record['wall_time_s'])}; {self.progress.summary()}", flush=True)
        else:
            self.progress.finish(key, None)
            self.failed.append((search, job, record))
            _print_failure(prefix, record, job_dir)
            print(f"{prefix} recorded as failed; {self.progress.summary()}", flush=True)

    def _attempts(self, search, job, model, init_from, save_model, slot, prefix) -> dict:
        ft = self.cfg.FINETUNE
        gpus, processes = slot
        job_dir, expected = search.job_dir(job), search.expected(job, init_from)
        where = (f" on GPUs {','.join(map(str, gpus))}" if gpus else f" on {processes} CPU processes" if processes > 1
                 else "")
        attempts = 1 + ft.RETRIES
        for attempt in range(1, attempts + 1):
            checkpoint = resumable_checkpoint(job_dir, expected) if attempt == 1 else None
            how = f", resuming from {checkpoint.name}" if checkpoint else ""
            again = f" (attempt {attempt} of {attempts})" if attempt > 1 else ""
            print(f"{prefix} started{where}{how}{again}", flush=True)
            arguments = _job_arguments(self.cfg, job, job_dir, model, search.random_init and init_from is None,
                                       save_model, processes, resume=checkpoint is not None)
            watcher = JobWatcher(job_dir / PROGRESS_FILE, prefix, ft.PROGRESS_SECONDS, time.time())
            record = run_job(job_dir, expected, arguments, gpus, processes, resume=checkpoint is not None,
                             env=_wandb_env(self.cfg, search, job.task), watch=watcher.poll)
            if record["status"] == "completed" or attempt == attempts:
                return record
            print(f"{prefix} failed after {format_duration(record['wall_time_s'])}: {record['error']}; running it"
                  f" again", flush=True)
        return record


def _work(searches: list, pending: dict, rows: dict) -> dict:
    """Each pending job's size for the ETA: training rows x epochs."""
    return {(job, search.random_init): max(1, rows.get(job.task, 1)) * job.epochs
            for search in searches for job in pending[search.root]}


def _tasks_without_success(searches: list, failed: list) -> list:
    """(tree, task) of every task with a failed job and no completed one: the search has no result for it."""
    failing = {(search.root, job.task) for search, job, _ in failed}
    out = []
    for search in searches:
        init = search.stilt_init() if search.targets else None
        for task in search.tasks:
            if (search.root, task) in failing and not any(
                    search.is_done(job, init if task in search.targets else None) for job in search.jobs[task]):
                out.append((search, task))
    return out


def _finish(searches: list, scheduler: _Scheduler) -> None:
    """Say what failed; stop with an error only when a task has no completed job at all."""
    if scheduler.failed:
        print(f"{len(scheduler.failed)} job(s) failed; they are recorded as failed (the report lists them) and rerun"
              f" by the next run of the same command:", flush=True)
        for search, job, record in scheduler.failed:
            print(f"  {search.job_dir(job)}: {record['error']}", flush=True)
    hopeless = _tasks_without_success(searches, scheduler.failed)
    if hopeless:
        names = ", ".join(f"{task}{' (random init)' if search.random_init else ''}" for search, task in hopeless)
        search, task = hopeless[0]
        first = next(record for s, job, record in scheduler.failed if s is search and job.task == task)
        raise FinetuneJobsFailed(f"no successful configuration for {names}: every job that ran failed (first:"
                                 f" {first['error']}); see the job.log files above, then rerun the same command")
    print(f"finetuning complete: {scheduler.finished} job(s) run, {len(scheduler.failed)} failed", flush=True)


def finetune(cfg) -> None:
    """Run every job of the search that has not completed for the current model and settings."""
    model = layout.finetune_model_path(cfg)
    if _looks_local(model) and not Path(model).is_dir():
        raise DataError(f"model to finetune not found: {model} (run the pretrain stage first, or set"
                        f" FINETUNE.MODEL_NAME_OR_PATH)")
    searches = [_Search(cfg, root, random_init) for root, random_init in _trees(cfg)]
    tasks = searches[0].tasks
    first = {search.root: search.pending([t for t in search.tasks if t not in search.targets]) for search in searches}
    later = {search.root: search.pending(sorted(search.targets), search.stilt_init()) if search.targets else []
             for search in searches}
    pending_tasks = sorted({job.task for jobs in [*first.values(), *later.values()] for job in jobs})
    rows = _pretokenize(cfg, pending_tasks) if pending_tasks else {}
    progress = SearchProgress({**_work(searches, first, rows), **_work(searches, later, rows)},
                              workers=max(1, len(cfg.FINETUNE.MULTIPROCESS_GPU_LIST)))
    planned = sum(len(jobs) for search in searches for jobs in search.jobs.values())
    print(f"finetune: {progress.total} of {planned} jobs to run ({', '.join(tasks)})", flush=True)
    scheduler = _Scheduler(cfg, progress)
    for search in searches:  # first everything that does not wait for STILT (the source included)
        scheduler.run(search, first[search.root], save_tasks={search.source} if search.targets else ())
    for search in searches:
        if not search.targets:
            continue
        init_from = search.stilt_init()
        expected = {(job, search.random_init) for job in later[search.root]}
        jobs = search.pending(sorted(search.targets), init_from) if init_from else []
        progress.add(_work([search], {search.root: jobs}, rows))
        for key in expected - {(job, search.random_init) for job in jobs}:
            progress.finish(key, None)  # not to run after all (done for the chosen source, or no source)
        if init_from is None:
            print(f"STILT: no completed {search.source} job; {', '.join(sorted(search.targets))} wait for the next"
                  f" run", flush=True)
            continue
        if jobs:
            print(f"STILT: {', '.join(sorted(search.targets))} start from {init_from} ({len(jobs)} jobs to run)",
                  flush=True)
            scheduler.run(search, jobs, init_from=init_from)
    _finish(searches, scheduler)
