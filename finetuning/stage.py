"""The finetune stage: the GLUE hyperparameter search with seeds, STILT, and AX, as one job per child process.

    finetune/<TASK>/<JOB>/               job.json, eval_results.json, predictions_*.tsv, job.log (model/ for STILT)
    finetune/<TASK>/.cache/              tokenized splits shared by the task's jobs
    finetune_random_init/<TASK>/<JOB>/   the same grid from random weights (FINETUNE.RANDOM_INIT_BASELINE)

Jobs run one at a time, or one per GPU group of ``FINETUNE.MULTIPROCESS_GPU_LIST`` in parallel. STILT targets
wait for the source task's search and start from its best job (median over seeds, then best seed). Top-level
imports stay light: the runner imports this module for status and validation.
"""
import os
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from finetuning.glue_data import HUB_DATASET, local_task_files
from finetuning.glue_tasks import GLUE_TASKS, canonical_task_name, predicting_task
from finetuning.jobs import claim, expected_record, is_completed, release, run_job
from finetuning.search import best_job, plan_task_jobs
from pipeline import layout
from pipeline.errors import ConfigError, DataError, ExtremeBertError
from pipeline.hardware import gpus_may_be_used
from pipeline.run_ids import file_stamp
from pipeline.stage_status import StageStatus

CACHE_SUBDIR = ".cache"


class FinetuneJobsFailed(ExtremeBertError):
    """Some jobs failed; they are recorded as failed and retried when the same command runs again."""


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


def _model_fingerprint(model: str) -> list:
    """Size and mtime of the model's files, so a re-pretrained model at the same path reruns the search."""
    folder = Path(model)
    if not folder.is_dir():
        return [model]
    names = ("config.json", "model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
    return [file_stamp(folder / name) for name in names if (folder / name).is_file()]


def job_settings(cfg, random_init: bool) -> dict:
    """Everything besides the grid values that changes a job's result; a completed job counts only if they match."""
    ft = cfg.FINETUNE
    return {"max_seq_length": ft.MAX_SEQ_LENGTH, "weight_decay": ft.WEIGHT_DECAY, "warmup_ratio": ft.WARMUP_RATIO,
            "lr_scheduler": ft.LR_SCHEDULER, "max_train_samples": ft.MAX_TRAIN_SAMPLES,
            "max_eval_samples": ft.MAX_EVAL_SAMPLES, "data": ft.GLUE_DIR or HUB_DATASET, "random_init": random_init,
            "model_fingerprint": _model_fingerprint(layout.finetune_model_path(cfg))}


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
        return expected_record(job, self.model, init_from, self.settings)

    def is_done(self, job, init_from=None) -> bool:
        return is_completed(self.job_dir(job), self.expected(job, init_from))

    def best_source(self):
        """The best completed job of the STILT source's search, or None."""
        task = GLUE_TASKS[self.source]
        return best_job(self.root / self.source, self.jobs[self.source], task.primary_metric, self.is_done)

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
        for size in {*cfg.FINETUNE.SEARCH.LARGE.BATCH_SIZES, *cfg.FINETUNE.SEARCH.SMALL.BATCH_SIZES}:
            if size % len(group):
                problems.append(f"FINETUNE: batch size {size} is not divisible by the {len(group)} GPUs of"
                                f" MULTIPROCESS_GPU_LIST[{i}] (each GPU takes an equal share)")


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
    _check_gpu_list(cfg, problems)
    model = cfg.FINETUNE.MODEL_NAME_OR_PATH
    if model and _looks_local(model) and not Path(model).is_dir():
        problems.append(f"FINETUNE.MODEL_NAME_OR_PATH: folder does not exist: {model}")
    if cfg.FINETUNE.GLUE_DIR and Path(cfg.FINETUNE.GLUE_DIR).is_dir():
        _check_glue_dir(cfg.FINETUNE.GLUE_DIR, tasks, problems)
    return problems


# ----------------------------------------------------------------------------------------------------------------
# Running the search


def _job_arguments(cfg, job, job_dir: Path, model: str, random_init: bool, save_model: bool, gpus) -> list:
    ft = cfg.FINETUNE
    per_device = job.batch_size // (len(gpus) if gpus else 1)
    arguments = ["--model_name_or_path", model, "--task_name", job.task, "--output_dir", str(job_dir),
                 "--overwrite_output_dir", "--do_train", "--do_eval", "--do_predict",
                 "--max_seq_length", str(ft.MAX_SEQ_LENGTH), "--per_device_train_batch_size", str(per_device),
                 "--learning_rate", repr(job.learning_rate), "--weight_decay", repr(ft.WEIGHT_DECAY),
                 "--num_train_epochs", str(job.epochs), "--lr_scheduler_type", ft.LR_SCHEDULER,
                 "--warmup_ratio", repr(ft.WARMUP_RATIO), "--seed", str(job.seed), "--precision", ft.PRECISION,
                 "--max_train_samples", str(ft.MAX_TRAIN_SAMPLES), "--max_eval_samples", str(ft.MAX_EVAL_SAMPLES),
                 "--tokenized_cache_dir", str(layout.finetune_dir(cfg) / job.task / CACHE_SUBDIR),
                 "--save_strategy", "no", "--logging_steps", "0.1"]  # no checkpoints; ten loss lines per job
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


def _pretokenize(cfg, tasks) -> None:
    """Tokenize each task's splits once, before the jobs, so that every job loads them and data errors surface
    before any training."""
    from finetuning.features import load_encoded, tokenizer_fingerprint
    from finetuning.run_glue import load_tokenizer

    tokenizer = load_tokenizer(layout.finetune_model_path(cfg))
    key = tokenizer_fingerprint(tokenizer)
    ft = cfg.FINETUNE
    for name in tasks:
        task = GLUE_TASKS[name]
        cache = str(layout.finetune_dir(cfg) / name / CACHE_SUBDIR)
        splits = [(task, "train", "train", ft.MAX_TRAIN_SAMPLES)]
        splits += [(task, "dev", dev, ft.MAX_EVAL_SAMPLES) for dev in task.dev]
        splits += [(owner, "test", test, 0) for owner in [task, *task.riders] for test in owner.test]
        started = time.time()
        for split_task, kind, split, rows in splits:
            load_encoded(split_task, kind, split, tokenizer, ft.MAX_SEQ_LENGTH, ft.GLUE_DIR, rows, cache,
                         tokenizer_key=key)
        print(f"tokenized {name} ({len(splits)} splits) in {time.time() - started:.1f}s", flush=True)


class _Scheduler:
    """Runs jobs on the GPU groups, one job per group at a time; without groups, one job at a time."""

    def __init__(self, cfg):
        groups = [list(group) for group in cfg.FINETUNE.MULTIPROCESS_GPU_LIST] or [None]
        self.free = queue.Queue()
        for group in groups:
            self.free.put(group)
        self.workers = len(groups)
        self.failures = []
        self.finished = 0

    def run(self, search: _Search, jobs: list, init_from=None, save_tasks=()) -> None:
        model = self.model_for(search, init_from)

        def one(job):
            gpus = self.free.get()
            try:
                self._run_one(search, job, model, init_from, job.task in save_tasks, gpus, len(jobs))
            finally:
                self.free.put(gpus)

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

    def _run_one(self, search, job, model, init_from, save_model, gpus, batch_total) -> None:
        job_dir = search.job_dir(job)
        where = f"GPUs {','.join(map(str, gpus))}" if gpus else "default device"
        tree = " (random init)" if search.random_init else ""
        if not claim(job_dir):
            print(f"[busy] {job.task}/{job.name}{tree}: claimed by another process, skipped", flush=True)
            self.failures.append((job_dir, "claimed by another process"))
            return
        try:
            arguments = _job_arguments(search.cfg, job, job_dir, model, search.random_init and init_from is None,
                                       save_model, gpus)
            print(f"[start] {job.task}/{job.name}{tree} on {where}", flush=True)
            record = run_job(job_dir, search.expected(job, init_from), arguments, gpus)
        finally:
            release(job_dir)
        self.finished += 1
        if record["status"] != "completed":
            self.failures.append((job_dir, record["error"]))
            print(f"[failed] {job.task}/{job.name}{tree} after {record['wall_time_s']:.0f}s: {record['error']}"
                  f" (log: {job_dir / 'job.log'})", flush=True)
        else:
            print(f"[done] {job.task}/{job.name}{tree} in {record['wall_time_s']:.0f}s", flush=True)


def finetune(cfg) -> None:
    """Run every job of the search that has not completed for the current model and settings."""
    model = layout.finetune_model_path(cfg)
    if _looks_local(model) and not Path(model).is_dir():
        raise DataError(f"model to finetune not found: {model} (run the pretrain stage first, or set"
                        f" FINETUNE.MODEL_NAME_OR_PATH)")
    searches = [_Search(cfg, root, random_init) for root, random_init in _trees(cfg)]
    tasks = searches[0].tasks
    pending_tasks = sorted({job.task for search in searches for job in search.pending(tasks)} |
                           {task for search in searches for task in search.targets})
    if pending_tasks:
        _pretokenize(cfg, pending_tasks)
    scheduler = _Scheduler(cfg)
    for search in searches:  # first everything that does not wait for STILT (the source included)
        first = [task for task in search.tasks if task not in search.targets]
        jobs = search.pending(first)
        print(f"{search.root}: {len(jobs)} of {sum(len(search.jobs[t]) for t in first)} jobs to run", flush=True)
        scheduler.run(search, jobs, save_tasks={search.source} if search.targets else ())
    for search in searches:
        if not search.targets:
            continue
        init_from = search.stilt_init()
        if init_from is None:
            scheduler.failures.append((search.root / search.source, "no completed STILT source search"))
            print(f"STILT: the {search.source} search did not complete; {', '.join(sorted(search.targets))} wait"
                  f" for the next run", flush=True)
            continue
        jobs = search.pending(sorted(search.targets), init_from)
        print(f"STILT: {', '.join(sorted(search.targets))} start from {init_from} ({len(jobs)} jobs to run)",
              flush=True)
        scheduler.run(search, jobs, init_from=init_from)
    if scheduler.failures:
        where, why = scheduler.failures[0]
        raise FinetuneJobsFailed(f"{len(scheduler.failures)} finetuning job(s) failed, first {where}: {why}; see its"
                                 f" job.log, then rerun the same command to retry them")
    print(f"finetuning complete: {scheduler.finished} job(s) run", flush=True)
