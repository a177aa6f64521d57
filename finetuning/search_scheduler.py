"""Running the search's jobs: where they run side by side (``job_slots``), each task's splits tokenized once
beforehand (``pretokenize``), each job's run_glue.py command line (``job_arguments``: the table's flags, then the
job's own), and ``JobScheduler``, which runs jobs on the slots, retries a failed one and prints a line as each
starts and ends."""
import logging
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from finetuning.arguments import TABLE_FLAGS, NerArguments, parse_args
from finetuning.glue_data import glue_splits
from finetuning.glue_tasks import GLUE_TASKS
from finetuning.search_tasks import RUN_GLUE, RUN_NER, predicts, search_task, task_flags
from finetuning.job_process import LOG_FILE, claimed, log_tail, resumable_checkpoint, run_job
from finetuning.job_selection import primary_score
from finetuning.search_progress import PROGRESS_FILE, JobWatcher, SearchProgress, format_duration, training_time
from pipeline import layout
from pipeline.defaults import get_key
from pipeline.errors import ConfigError, DataError
from pipeline.hardware import resolve_num_gpus
from pipeline.manifest import read_json
from pipeline.tensorboard_log import remove_event_files

log = logging.getLogger(__name__)

CACHE_SUBDIR = ".cache"  # finetune/<TASK>/.cache/: the tokenized splits the task's jobs share


def batch_split_problems(cfg, parts: int, by: str) -> list:
    """Each batch size of the grids splits evenly into ``parts`` (``by`` says into what, and why); nothing to say
    when ``parts`` is below 1 (a setting out of its range, reported as such)."""
    if parts < 1:
        return []
    own = [size for task in cfg.FINETUNE.OWN_TASKS.values() for size in task.BATCH_SIZES]
    sizes = {*cfg.FINETUNE.SEARCH.LARGE.BATCH_SIZES, *cfg.FINETUNE.SEARCH.SMALL.BATCH_SIZES, *own}
    return [f"FINETUNE: batch size {size} is not divisible by {by}" for size in sorted(sizes) if size % parts]


def cpu_process_problems(cfg, processes: int) -> list:
    return batch_split_problems(cfg, processes, f"SYSTEM.PROCESSES_PER_NODE = {processes} (on CPU each job runs as"
                                                f" that many processes, each taking an equal share)")


def job_slots(cfg) -> list:
    """Where jobs run side by side, as ``(GPU group or None, processes per job)``: the MULTIPROCESS_GPU_LIST
    groups; else one job per GPU of the node, in parallel (every GPU in use); else one job at a time on the CPU,
    as SYSTEM.PROCESSES_PER_NODE processes (torchrun, gloo) when that is > 1."""
    groups = [list(group) for group in cfg.FINETUNE.MULTIPROCESS_GPU_LIST]
    if groups:
        return [(group, len(group)) for group in groups]
    gpus = resolve_num_gpus(cfg)
    if gpus > 1:
        return [([gpu], 1) for gpu in range(gpus)]
    processes = 1 if gpus else max(1, cfg.SYSTEM.PROCESSES_PER_NODE)
    problems = cpu_process_problems(cfg, processes)
    if problems:
        raise ConfigError(problems[0])
    return [(None, processes)]


def pretokenize(cfg, tasks) -> dict:
    """Tokenize each task's splits once, before the jobs, so that every job loads them and data errors surface
    before any training; returns each task's number of training rows (what the ETA counts in)."""
    from finetuning.job_run import load_tokenizer
    from finetuning.tokenized_data import load_encoded, tokenizer_fingerprint

    tokenizer = load_tokenizer(layout.finetune_model_path(cfg))
    key = tokenizer_fingerprint(tokenizer)
    ft = cfg.FINETUNE
    rows = {}
    for name in tasks:
        started = time.time()
        task = search_task(cfg, name)
        if not task.is_glue:
            rows[name], splits = _read_own_task(cfg, task, tokenizer)
        else:
            cache = str(layout.finetune_dir(cfg) / name / CACHE_SUBDIR)
            splits = glue_splits(GLUE_TASKS[name], max_train=ft.MAX_TRAIN_SAMPLES, max_eval=ft.MAX_EVAL_SAMPLES)
            for split_task, kind, split, limit in splits:
                encoded = load_encoded(split_task, kind, split, tokenizer, ft.MAX_SEQ_LENGTH, ft.GLUE_DIR, limit,
                                       cache, tokenizer_key=key, malformed_rows=ft.MALFORMED_ROWS)
                rows.setdefault(name, len(encoded))  # the first split is train
        log.info(f"tokenized {name} ({len(splits)} splits, {rows[name]} training rows) in {time.time() - started:.1f}s")
    return rows


def _read_own_task(cfg, task, tokenizer) -> tuple:
    """Read and tokenize an own task's files as its jobs will (the same flags, the same reader), so that a problem
    in them stops the stage before any job; (training rows, the splits read)."""
    argv = table_arguments(cfg) + task_flags(task) + ["--model_name_or_path", "-", "--output_dir", "-",
                                                      "--do_train", "--do_eval", *["--do_predict"] * predicts(task)]
    if task.is_token_level:
        from finetuning.token_encoding import load_token_task_data

        model_args, data_args, args, ner_args, _ = parse_args(argv, extra_types=(NerArguments,))
        data = load_token_task_data(model_args, data_args, ner_args, args, tokenizer, log=lambda line: None)
    else:
        from finetuning.tokenized_data import load_task_data

        model_args, data_args, args, _ = parse_args(argv)
        data = load_task_data(model_args, data_args, args, tokenizer)
    return len(data.train), [data.train, *data.dev.values(), *data.test.values()]


def table_arguments(cfg) -> list:
    """run_glue.py's flags for the FINETUNE settings that name it in the table (``scripts=_FT``), at the config's
    values: a bool is a switch given when True, an empty string is left out."""
    arguments = []
    for name, setting in TABLE_FLAGS.items():
        value = get_key(cfg, setting.key)
        if isinstance(value, bool):
            arguments += [f"--{name}"] * value
        elif value != "":
            arguments += [f"--{name}", str(value)]
    return arguments


def job_arguments(cfg, job, job_dir: Path, model: str, random_init: bool, save_model: bool, processes: int,
                   resume: bool = False) -> list:
    """The job's command line: its script (run_glue.py, or run_ner.py for a token task), the table's flags, the
    task's, then the job's own (its grid values, folders)."""
    ft = cfg.FINETUNE
    task = search_task(cfg, job.task)
    per_device = job.batch_size // (processes * ft.GRADIENT_ACCUMULATION_STEPS)
    arguments = [str(RUN_NER if task.is_token_level else RUN_GLUE)] + table_arguments(cfg) + task_flags(task) + [
        "--model_name_or_path", model, "--output_dir", str(job_dir),
        "--do_train", "--do_eval", *["--do_predict"] * predicts(task), "--per_device_train_batch_size", str(per_device),
        "--learning_rate", repr(job.learning_rate), "--num_train_epochs", str(job.epochs), "--seed", str(job.seed),
        "--tokenized_cache_dir", str(layout.finetune_dir(cfg) / job.task / CACHE_SUBDIR),
        "--logging_steps", "0.1", "--progress_file", str(job_dir / PROGRESS_FILE)]  # ten loss lines per job
    if ft.SAVE_STEPS:  # the newest checkpoint only: a rerun resumes a killed job from it
        arguments += ["--save_strategy", "steps", "--save_steps", str(ft.SAVE_STEPS), "--save_total_limit", "1"]
    else:
        arguments += ["--save_strategy", "no"]
    arguments += ["--overwrite_output_dir"] * (not resume)
    reporters = ["wandb"] * cfg.WANDB.ENABLED + ["tensorboard"] * cfg.SYSTEM.TENSORBOARD
    arguments += ["--report_to", *reporters] if reporters else []
    if cfg.WANDB.ENABLED:
        arguments += ["--run_name", f"{job.task}/{job.name}{' random-init' if random_init else ''}"]
    if cfg.SYSTEM.TENSORBOARD:
        arguments += ["--logging_dir", str(layout.tensorboard_dir_of(cfg, job_dir))]
    arguments += ["--random_init"] * random_init
    if save_model:
        arguments += ["--save_model", "--license", cfg.PUBLISH.LICENSE]  # the license its model card declares
    return arguments + ["--use_cpu"] * (cfg.SYSTEM.NUM_GPUS == 0)


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


class JobScheduler:
    """Runs jobs on the slots of ``job_slots``, one job per slot at a time. A failed job is run again up to
    FINETUNE.RETRIES times (from scratch); a job an earlier run left unfinished resumes from its checkpoint."""

    def __init__(self, cfg, work: dict):
        slots = job_slots(cfg)
        self.cfg = cfg
        self.progress = SearchProgress(work, workers=len(slots))  # the ETA: the slots run side by side
        self.free = queue.Queue()
        for slot in slots:
            self.free.put(slot)
        self.failed = []  # (search, job, record) of jobs that failed every attempt
        self.finished = 0

    def run(self, search, jobs: list, init_from=None, save_tasks=()) -> None:
        model = search.start_model(init_from)
        if init_from and not (Path(model) / "config.json").is_file():
            raise DataError(f"STILT: the best {search.source} job has no saved model at {model}; delete"
                            f" {search.root / init_from} and rerun to train it again")

        def one(job):
            slot = self.free.get()
            try:
                self._run_one(search, job, model, init_from, job.task in save_tasks, slot)
            finally:
                self.free.put(slot)

        with ThreadPoolExecutor(max_workers=self.progress.workers) as pool:
            list(pool.map(one, jobs))

    def _run_one(self, search, job, model, init_from, save_model, slot) -> None:
        key = (job, search.random_init)
        prefix = self.progress.prefix(key)
        job_dir = search.job_dir(job)
        with claimed(job_dir) as mine:
            if not mine:
                log.info(f"{prefix} skipped: another process is running it")
                self.progress.finish(key, None)
                return
            record = self._attempts(search, job, model, init_from, save_model, slot, prefix)
        self.finished += 1
        if record["status"] == "completed":
            self.progress.finish(key, record["wall_time_s"], training_time(read_json(job_dir / PROGRESS_FILE)))
            metric = search_task(self.cfg, job.task).primary_metric
            score = primary_score(job_dir, metric)
            log.info(f"{prefix} done: {metric} {'n/a' if score is None else f'{score:.4f}'} in"
                     f" {format_duration(record['wall_time_s'])}; {self.progress.summary()}")
        else:
            self.progress.finish(key, None)
            self.failed.append((search, job, record))
            log.warning("\n".join([f"{prefix} FAILED after {format_duration(record['wall_time_s'])}: {record['error']};"
                                    f" the last lines of {job_dir / LOG_FILE}:"]
                                   + [f"    | {line}" for line in log_tail(job_dir)]))
            log.info(f"{prefix} recorded as failed; {self.progress.summary()}")

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
            if checkpoint is None:  # trained from scratch: its TensorBoard curves start afresh too
                remove_event_files(layout.tensorboard_dir_of(self.cfg, job_dir))
            again = f" (attempt {attempt} of {attempts})" if attempt > 1 else ""
            log.info(f"{prefix} started{where}{how}{again}")
            arguments = job_arguments(self.cfg, job, job_dir, model, search.random_init and init_from is None,
                                       save_model, processes, resume=checkpoint is not None)
            watcher = JobWatcher(job_dir / PROGRESS_FILE, prefix, ft.PROGRESS_SECONDS, time.time())
            record = run_job(job_dir, expected, arguments, gpus, processes, resume=checkpoint is not None,
                             env=_wandb_env(self.cfg, search, job.task), watch=watcher.poll)
            if record["status"] == "completed" or attempt == attempts:
                return record
            log.warning(f"{prefix} failed after {format_duration(record['wall_time_s'])}: {record['error']}; running"
                        f" it again")
