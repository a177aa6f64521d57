"""Run the pipeline's stages in order: skip the complete ones, stream each stage's output to the console and to its
log file, and stop at the first failure with a one-line summary naming the stage and its log."""
import importlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline import layout
from pipeline.stage_status import StageStatus

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Stage:
    name: str  # as used by --force and in log file names
    section: str  # config section whose ENABLED flag switches the stage
    module: str  # module holding the entry and status functions
    entry: str  # entry function, called with the resolved config in a child process
    status: str  # function returning a StageStatus for the resolved config


STAGES = (
    Stage("install", "INSTALL", "pipeline.install_check", "check_install", ""),
    Stage("dataset", "DATASET", "dataset.stage", "prepare_dataset", "dataset_status"),
    Stage("pretrain", "PRETRAIN", "pretraining.stage", "pretrain", "pretrain_status"),
    Stage("finetune", "FINETUNE", "finetuning.stage", "finetune", "finetune_status"),
    Stage("result_collection", "RESULT_COLLECTION", "scripts.result_collection", "collect_test_result",
          "result_collection_status"),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def stage_status(stage: Stage, cfg) -> StageStatus:
    if not stage.status:  # the install check is cheap and always runs
        return StageStatus(reads=["requirements.txt"], writes=[], complete=False, detail="always checked")
    module = importlib.import_module(stage.module)
    return getattr(module, stage.status)(cfg)


def forced_stages(force: list, stages=STAGES) -> set:
    """The stages ``--force`` redoes: each named stage and every stage after it (they depend on its output)."""
    names = [stage.name for stage in stages]
    if not force:
        return set()
    first = min(names.index(name) for name in force)
    return set(names[first:])


def plan(cfg, force=(), stages=STAGES) -> list:
    """(stage, action, status) for every stage; action is run | skip | disabled."""
    redo = forced_stages(list(force), stages)
    rows = []
    for stage in stages:
        if not cfg[stage.section].ENABLED:
            rows.append((stage, "disabled", None))
            continue
        status = stage_status(stage, cfg)
        action = "skip" if status.complete and stage.name not in redo else "run"
        rows.append((stage, action, status))
    return rows


def format_plan(rows) -> str:
    lines = ["Plan:"]
    for stage, action, status in rows:
        if status is None:
            lines.append(f"  [{action:8}] {stage.name}")
            continue
        lines.append(f"  [{action:8}] {stage.name}: {status.detail}")
        if status.reads:
            lines.append(f"               reads:  {', '.join(status.reads)}")
        if status.writes:
            lines.append(f"               writes: {', '.join(status.writes)}")
    return "\n".join(lines)


def _banner(text: str) -> None:
    print(f"\n{'=' * 100}\n== {text}\n{'=' * 100}", flush=True)


def run_stage_subprocess(stage: Stage, config_path: Path, log_file: Path) -> int:
    """Run one stage in a child process; its output goes to the console and is appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pipeline.run_stage", f"{stage.module}:{stage.entry}", str(config_path)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    with open(log_file, "ab") as log:
        log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd())
        # Copy raw chunks rather than lines so that progress bars ('\r' updates) stay live on the console.
        while True:
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            log.write(chunk)
        return process.wait()


def _clear(paths) -> None:
    for path in map(Path, paths):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_pipeline(cfg, force=(), stages=STAGES) -> int:
    """Run every enabled stage that is not complete; returns the process exit code (0 = all stages succeeded)."""
    config_path = layout.run_dir(cfg) / "config.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(cfg.dump(), encoding="utf-8")
    redo = forced_stages(list(force), stages)
    rows = plan(cfg, force, stages)
    print(format_plan(rows), flush=True)
    ran_earlier = False
    for stage, action, status in rows:
        if action == "disabled":
            continue
        if action == "skip" and ran_earlier:
            # An earlier stage just rewrote this stage's inputs (e.g. a dataset rebuilt under the same ID): ask again.
            status = stage_status(stage, cfg)
            if not status.complete:
                action = "run"
                print(f"\n[run] {stage.name}: {status.detail} (after the stages above ran)", flush=True)
        if action == "skip":
            print(f"\n[skip] {stage.name}: complete ({', '.join(status.writes)})", flush=True)
            continue
        ran_earlier = ran_earlier or bool(stage.status)  # the install check writes nothing a stage reads
        if stage.name in redo:
            _clear(status.clear_paths)
        log_file = layout.log_path(cfg, stage.name)
        _banner(f"stage {stage.name}  (log: {log_file})")
        started = time.time()
        code = run_stage_subprocess(stage, config_path, log_file)
        elapsed = time.time() - started
        if code != 0:
            print(f"\nFAILED: stage '{stage.name}' exited with code {code} after {elapsed:.0f}s; log: {log_file}",
                  file=sys.stderr, flush=True)
            return 1
        print(f"\n[done] {stage.name} in {elapsed:.1f}s", flush=True)
    print(f"\nPipeline finished. Run folder: {layout.run_dir(cfg)}", flush=True)
    return 0
