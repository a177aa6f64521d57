"""One finetuning job on disk: its ``job.json`` record, a claim, and its run as a child process, ``completed`` only
when the job script exited 0 and wrote its dev results; anything else is ``failed`` with the error line.

On a machine without a GPU, a one-process job is forked from a server that has imported torch and transformers
once for the whole stage (``multiprocessing``'s forkserver): a fresh interpreter spends several seconds on those
imports, most of a small task's job. Elsewhere a job starts a fresh interpreter: a process whose imports may have
asked CUDA for its devices cannot safely fork, and torchrun starts its own.
"""
import fcntl
import io
import multiprocessing
import multiprocessing.forkserver
import os
import runpy
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

from finetuning.job_checkpoints import latest_checkpoint, remove_checkpoints
from finetuning.job_record import EVAL_FILE, JOB_FILE, records_match
from finetuning.search_progress import PROGRESS_FILE
from finetuning.search_tasks import RUN_GLUE, RUN_NER
from pipeline.hardware import machine_has_gpu
from pipeline.locks import try_lock
from pipeline.log_setup import LEVEL_ENV, LOG_FILE_ENV
from pipeline.manifest import read_json, write_json_atomic

CLAIM_FILE = ".claim"
LOG_FILE = "job.log"
REPO_ROOT = Path(__file__).resolve().parents[1]
JOB_SCRIPTS = (str(RUN_GLUE), str(RUN_NER))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def resumable_checkpoint(job_dir: Path, expected: dict) -> Optional[Path]:
    """The newest checkpoint an unfinished earlier run of this same job left in ``job_dir`` (killed, or failed after
    it), or None. run_glue.py itself refuses a checkpoint made with other training settings."""
    record = read_json(Path(job_dir) / JOB_FILE)
    if not records_match(record, expected) or record.get("status") == "completed":
        return None
    return latest_checkpoint(job_dir)


@contextmanager
def claimed(job_dir: Path):
    """Hold ``job_dir`` for this process while the block runs, so that two processes running the stage on one run
    folder never train the same job; yields False when another process holds it.

    The claim is an ``flock`` on ``.claim``: the kernel drops it when the holder ends, however it ends, so a killed
    run never leaves a claim that blocks the next one. The file itself stays: removing it would let a process that
    opened it before the removal lock a file no other process sees."""
    job_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(job_dir / CLAIM_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        yield try_lock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)  # closing the only descriptor drops the flock


def _clear_previous_attempt(job_dir: Path) -> None:
    for entry in job_dir.iterdir():
        if entry.name != CLAIM_FILE:  # the claim this process holds stays
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _last_run_lines(log_path: Path) -> list:
    """The non-empty lines the last run wrote to the log (a resumed job's log holds every run, each after a
    ``# <time> <command>`` line)."""
    try:
        lines = [line.rstrip() for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return []
    starts = [i for i, line in enumerate(lines) if line.startswith("# ") and any(s in line for s in JOB_SCRIPTS)]
    return [line for line in lines[starts[-1] if starts else 0:] if line.strip()]


def _error_line(log_path: Path, returncode: int) -> str:
    """The line that says what went wrong: the ``error:`` line, else the last line (a traceback's exception)."""
    lines = [line.strip() for line in _last_run_lines(log_path)]
    errors = [line for line in lines if line.startswith("error:")]
    message = errors[-1] if errors else (lines[-1] if lines else "no output")
    return f"exit code {returncode}: {message[:500]}"


START_METHODS = multiprocessing.get_all_start_methods()
PRELOADED = ["finetuning.job_run", "transformers.models.bert.modeling_bert"]  # what every job script imports


def _run_script(arguments: list, log_path: str, env: dict, cwd: str) -> None:
    """In the forked child: what ``python SCRIPT FLAGS`` would do, with its output appended to the job's log.
    The script's exit code (``sys.exit``) is the child's; an uncaught exception prints its traceback and is 1."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout, sys.stderr = (io.TextIOWrapper(io.FileIO(n, "w", closefd=False), encoding="utf-8",
                                               errors="backslashreplace", write_through=True) for n in (1, 2))
    multiprocessing.set_start_method(None, force=True)  # a fresh interpreter's default, not the server's method
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = list(arguments)
    sys.path[:0] = [str(Path(arguments[0]).resolve().parent), str(REPO_ROOT)]
    runpy.run_path(arguments[0], run_name="__main__")


def forks(gpus: Optional[list], processes: int) -> bool:
    """Whether a job on ``gpus`` (None: no GPU group) as ``processes`` processes is forked from the preloaded
    server."""
    return gpus is None and processes == 1 and not machine_has_gpu() and "forkserver" in START_METHODS


def start_job_server():
    """The preloaded server's context, the server started: called before the stage's own work, its imports run
    alongside that work instead of before the first job."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOADED)
    multiprocessing.forkserver.ensure_running()
    return context


class ForkedJob:
    """The part of ``subprocess.Popen`` that ``_wait`` uses, for a job forked from the preloaded server."""

    def __init__(self, arguments: list, log_path: Path, env: dict, cwd: Path):
        self.process = start_job_server().Process(target=_run_script, args=(arguments, str(log_path), env, str(cwd)))
        self.process.start()

    def wait(self, timeout: Optional[float] = None) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(self.process.name, timeout)
        return self.process.exitcode

    def poll(self) -> Optional[int]:
        return self.process.exitcode

    def terminate(self) -> None:
        self.process.terminate()


def job_command(arguments: list, processes: int) -> list:
    """The child command for ``arguments`` (the job script, run_glue.py or run_ner.py, then its flags); a job of
    several processes (a GPU group, or CPU ranks) runs under torchrun."""
    if processes > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                *arguments]
    return [sys.executable, *arguments]


def _wait(process, watch: Optional[Callable], poll_s: float) -> int:
    """The child's exit code; ``watch(now)`` runs between waits. A child still running when this stage is stopped
    (an exception here) is stopped with it."""
    try:
        while True:
            try:
                return process.wait(timeout=poll_s)
            except subprocess.TimeoutExpired:
                if watch is not None:
                    watch(time.time())
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait()


def run_job(job_dir: Path, record: dict, arguments: list, gpus: Optional[list], processes: int = 1, *,
            resume: bool = False, env: Optional[dict] = None, watch: Optional[Callable] = None,
            poll_s: float = 1.0) -> dict:
    """Run one claimed job as a child process (its output to ``job.log``) and record the outcome in ``job.json``.
    ``gpus``: the GPU group (one process each); without one, ``processes`` CPU processes share the cores.

    ``resume`` keeps the folder (and appends to the log) so that ``run_glue.py`` continues from its checkpoint;
    otherwise an earlier attempt's files are removed first. ``env`` adds variables for the child; ``watch(now)``
    runs every ``poll_s`` seconds while it runs. A completed job's checkpoints and progress file are deleted: only a
    job that has not finished needs them, and a search keeps hundreds of finished jobs."""
    if not resume:
        _clear_previous_attempt(job_dir)
    (job_dir / PROGRESS_FILE).unlink(missing_ok=True)  # a killed run's last step is no news about this one
    started = time.time()
    record = {**record, "status": "running", "started_at": _now(), "finished_at": None, "wall_time_s": None,
              "error": None}
    write_json_atomic(job_dir / JOB_FILE, record)
    child_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), child_env.get("PYTHONPATH", "")]))
    # A job's console is its job.log, not the stage's log; as a log, it keeps the INFO lines under --quiet too.
    child_env.pop(LOG_FILE_ENV, None)
    child_env[LEVEL_ENV] = "DEBUG" if child_env.get(LEVEL_ENV) == "DEBUG" else "INFO"
    if gpus is not None:
        child_env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
        processes = len(gpus)
    elif processes > 1:
        child_env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    log_path = job_dir / LOG_FILE
    command = job_command(arguments, processes)
    with open(log_path, "ab" if resume else "wb") as log:
        log.write(f"# {_now()} {' '.join(command)}\n".encode())
        log.flush()
        if forks(gpus, processes):
            process = ForkedJob(arguments, log_path, child_env, REPO_ROOT)
        else:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_env, cwd=REPO_ROOT)
        returncode = _wait(process, watch, poll_s)
    ok = returncode == 0 and (job_dir / EVAL_FILE).is_file()
    record.update(status="completed" if ok else "failed", finished_at=_now(),
                  wall_time_s=round(time.time() - started, 2),
                  error=None if ok else _error_line(log_path, returncode) if returncode else "no eval_results.json")
    write_json_atomic(job_dir / JOB_FILE, record)
    if ok:
        remove_checkpoints(job_dir)
        (job_dir / PROGRESS_FILE).unlink(missing_ok=True)
    return record


def log_tail(job_dir: Path, lines: int = 15) -> list:
    """The last non-empty lines of the job's last run (what a failed job's console report shows)."""
    return _last_run_lines(Path(job_dir) / LOG_FILE)[-lines:]
