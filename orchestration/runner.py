"""Run the pipeline's stages in order: skip the complete ones, stream each stage's output to the console and to its
log file, and stop at the first failure with a one-line summary naming the stage and its log. How two runs on one
OUTPUT_ROOT take turns, and the disk checks before a stage: docs/interfaces.md.
"""
import inspect
import logging
import os
import shutil
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from orchestration.stage_process import run_logged
from orchestration.stages import REPO_ROOT, STAGES, Stage
from pipeline import disk, layout
from pipeline.errors import ExitCode
from pipeline.locks import FolderLock
from pipeline.manifest import StageStatus, write_text_atomic

log = logging.getLogger(__name__)


def stage_status(stage: Stage, cfg, deep: bool = False) -> StageStatus:
    """The stage's status; ``deep`` (main.py --verify) asks a status function that takes ``deep`` to hash its
    outputs rather than compare their sizes."""
    if stage.status is None:  # the install check is cheap and always runs
        return StageStatus(reads=["requirements.txt"], writes=[], complete=False, detail="always checked")
    if deep and "deep" in inspect.signature(stage.status).parameters:
        return stage.status(cfg, deep=True)
    return stage.status(cfg)


def forced_stages(force: list, stages=STAGES) -> set:
    """The stages ``--force`` redoes: each named stage and every stage after it (they depend on its output)."""
    names = [stage.name for stage in stages]
    return set(names[min(map(names.index, force)):]) if force else set()


def plan(cfg, force=(), stages=STAGES, deep: bool = False) -> list:
    """(stage, action, status) for every stage; action is run | skip | disabled."""
    redo = forced_stages(list(force), stages)
    rows = []
    for stage in stages:
        status = stage_status(stage, cfg, deep) if cfg[stage.section].ENABLED else None
        rows.append((stage, "disabled" if status is None else _action(stage, status, redo), status))
    return rows


def _action(stage: Stage, status: StageStatus, redo: set) -> str:
    return "skip" if status.complete and stage.name not in redo else "run"


def format_plan(rows) -> str:
    lines = ["Plan:"]
    for stage, action, status in rows:
        lines.append(f"  [{action:8}] {stage.name}" + (f": {status.detail}" if status else ""))
        if status and status.reads:
            lines.append(f"               reads:  {', '.join(status.reads)}")
        if status and status.writes:
            lines.append(f"               writes: {', '.join(status.writes)}")
    return "\n".join(lines)


def run_stage_subprocess(stage: Stage, config_path: Path, log_file: Path):
    """Run one stage in a child process (see ``orchestration.stage_process``); returns its Outcome."""
    entry = f"{stage.entry.__module__}:{stage.entry.__qualname__}"  # a child process finds a function by its name
    command = [sys.executable, "-m", "orchestration.stage_process", entry, str(config_path), str(log_file)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    return run_logged(command, env, log_file, cwd=os.getcwd())


def _clear(paths) -> None:
    for path in map(Path, paths):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


class _Turn:
    """One stage's decision to run or skip, settled under the lock of its folder when that folder is shared."""

    def __init__(self, stage: Stage, status: StageStatus, cfg, redo: set, deep: bool):
        self.stage, self.status, self.cfg, self.redo, self.deep = stage, status, cfg, redo, deep

    def ask_again(self) -> str:
        self.status = stage_status(self.stage, self.cfg, self.deep)
        return _action(self.stage, self.status, self.redo)

    def settle(self, action: str, lock, inputs_changed: bool) -> str:
        """Readers share the folder; a writer has it alone. After waiting for another run, or after an earlier
        stage rewrote this one's inputs, the stage is asked again: the other run may have written it already."""
        ask_again = inputs_changed and action == "skip"
        if lock is not None:
            ask_again = lock.acquire(shared=True) or inputs_changed
        if ask_again:
            action = self.ask_again()
        if action == "run" and lock is not None and lock.acquire(shared=False):
            action = self.ask_again()
        return action


def _prepare_to_run(stage: Stage, status: StageStatus, cfg, forced: bool) -> None:
    """Clear what must be redone, then check that the stage's folder takes its writes."""
    if forced:
        _clear(status.clear_paths)
    _clear(status.damaged)
    folder = stage.folder(cfg)
    disk.check_writable(folder)
    estimate = int(stage.estimate(cfg)) if stage.estimate else disk.DEFAULT_ESTIMATE_BYTES
    needed = max(estimate - disk.folder_bytes(status.writes), 0) + disk.MARGIN_BYTES
    disk.check_free_space(folder, needed, stage.name)


def _stopped(stage: Stage, outcome, elapsed: float, log_file: Path) -> int:
    """The summary line of a stage that did not succeed, and the pipeline's exit code for it."""
    if outcome.interrupted_by:
        print(f"\nINTERRUPTED: stage '{stage.name}' {outcome.reason} after {elapsed:.0f}s; rerun the same command "
              f"to continue; log: {log_file}", file=sys.stderr, flush=True)
        return ExitCode.SIGNAL_BASE + outcome.interrupted_by
    print(f"\nFAILED: stage '{stage.name}' {outcome.reason} after {elapsed:.0f}s; log: {log_file}",
          file=sys.stderr, flush=True)
    return ExitCode.DISK if outcome.returncode == ExitCode.DISK else ExitCode.FAILED


def run_pipeline(cfg, force=(), stages=STAGES, wait: bool = True, deep: bool = False) -> int:
    """Run every enabled stage that is not complete; returns the process exit code (0 = all stages succeeded).

    ``wait`` False makes a folder held by another run an error (FolderBusy) instead of a wait; ``deep`` hashes
    outputs instead of comparing sizes (main.py --verify). DiskError and FolderBusy propagate to the caller."""
    run_folder = layout.run_dir(cfg)
    disk.check_writable(run_folder)
    with ExitStack() as held:
        root = layout.output_root(cfg)
        held.enter_context(FolderLock(run_folder, root, wait)).acquire()
        config_path = write_text_atomic(run_folder / "config.yaml", cfg.dump())
        redo = forced_stages(list(force), stages)
        rows = plan(cfg, force, stages, deep)
        log.info(format_plan(rows))
        ran_earlier = False
        for stage, planned, status in rows:
            if planned == "disabled":
                continue
            turn = _Turn(stage, status, cfg, redo, deep)
            folder = stage.folder(cfg)
            lock = None if folder == run_folder else held.enter_context(FolderLock(folder, root, wait))
            action = turn.settle(planned, lock, ran_earlier)
            if action == "run" and planned == "skip":
                log.info(f"\n[run] {stage.name}: {turn.status.detail} (after the stages above ran)")
            if action == "skip":
                log.info(f"\n[skip] {stage.name}: complete ({', '.join(turn.status.writes)})")
                continue
            ran_earlier = ran_earlier or bool(stage.status)  # the install check writes nothing a stage reads
            _prepare_to_run(stage, turn.status, cfg, stage.name in redo)
            log_file = layout.log_path(cfg, stage.name)
            log.info(f"\n{'=' * 100}\n== stage {stage.name}  (log: {log_file})\n{'=' * 100}")
            started = time.time()
            outcome = run_stage_subprocess(stage, config_path, log_file)
            elapsed = time.time() - started
            if outcome.returncode != 0 or outcome.interrupted_by:
                return _stopped(stage, outcome, elapsed, log_file)
            log.info(f"\n[done] {stage.name} in {elapsed:.1f}s")
            if lock is not None:
                lock.acquire(shared=True)  # the later stages read what it wrote: keep other writers out
    print(f"\nPipeline finished. Run folder: {layout.run_dir(cfg)}", flush=True)  # the summary: shown even --quiet
    return ExitCode.OK
