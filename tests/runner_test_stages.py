"""Small real stages for testing the runner's mechanics (skip, force, failure, locks, signals, disk errors) without
the heavy stages.

Each stage appends a line to ``calls.log`` in the output root, writes its output and a manifest, as real stages do.
``python -m tests.runner_test_stages SET --config X.yaml ...`` runs main.py's ``main`` with the stage set ``SET``
in a process of its own, so that tests can signal it and run two at once.
"""
import errno
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline import layout
from pipeline.errors import DataError
from pipeline.manifest import manifest_status, write_manifest
from orchestration.stages import Stage


REPO_ROOT = Path(__file__).resolve().parents[1]
# A logger under a package of ours, as a real stage's module logger is: its DEBUG lines reach the stage's log file.
log = logging.getLogger("pipeline.stand_in_stages")


def config_opts(tmp_path, *opts) -> list:
    """``--opts`` for a config whose output root is ``tmp_path/out`` (the test stages ignore the corpus; 0 GPUs
    spares the import of torch that counting them costs)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "a.txt").write_text("One article.\n")
    return ["SYSTEM.OUTPUT_ROOT", str(tmp_path / "out"), "DATASET.CUSTOMIZED_DATASETS", f"[{corpus}]",
            "PRETRAIN.BATCH_SIZE", "32", "SYSTEM.NUM_GPUS", "0", *opts]


def start_main(tmp_path, stage_set: str, name: str, *opts, args=()) -> subprocess.Popen:
    """main.py's ``main`` with one of this module's stage sets, in a process of its own; its console output goes to
    ``tmp_path/<name>.out``."""
    config = tmp_path / "empty.yaml"
    config.write_text("")
    command = [sys.executable, "-m", "tests.runner_test_stages", stage_set, "--config", str(config), *args,
               "--opts", *config_opts(tmp_path, *opts)]
    with open(tmp_path / f"{name}.out", "w") as console:
        return subprocess.Popen(command, stdout=console, stderr=subprocess.STDOUT, cwd=REPO_ROOT)


def _stage_dir(cfg, name):
    return Path(cfg.SYSTEM.OUTPUT_ROOT) / name


def _settings(cfg):
    return {"seed": cfg.SYSTEM.SEED}


def _record_call(cfg, name) -> Path:
    calls = Path(cfg.SYSTEM.OUTPUT_ROOT) / "calls.log"
    with open(calls, "a") as f:
        f.write(name + "\n")
    return calls


def _run(cfg, name, settings=None, out=None):
    calls = _record_call(cfg, name)
    out = out or _stage_dir(cfg, name)
    out.mkdir(parents=True, exist_ok=True)
    # The call count makes every run's output differ, as a rebuilt dataset's would.
    (out / "output.txt").write_text(f"{name} output, call {len(calls.read_text().split())}\n")
    log.info(f"{name}: wrote {out / 'output.txt'}")
    write_manifest(out, name, settings or _settings(cfg))


def _reader_settings(cfg):
    """A stage whose settings include what the stage "first" wrote, as pretraining's include the samples' identity."""
    source = _stage_dir(cfg, "first") / "output.txt"
    return {**_settings(cfg), "input": source.read_text() if source.exists() else None}


def reader(cfg):
    _run(cfg, "reader", _reader_settings(cfg))


def reader_status(cfg):
    out = _stage_dir(cfg, "reader")
    return manifest_status(out, _reader_settings(cfg), reads=[], writes=[out],
                           outputs_ok=lambda: (out / "output.txt").exists())


def first(cfg):
    _run(cfg, "first")


def second(cfg):
    _run(cfg, "second")


def failing(cfg):
    print("failing: about to fail")
    raise DataError("the corpus folder /nowhere is empty")


def leveled(cfg):
    """A line at each level, and a library that logs at DEBUG (filelock), for the tests of what reaches the
    console and the stage's log at each level."""
    import filelock

    log.debug("stand-in debug line")
    log.info("stand-in info line")
    log.warning("stand-in warning line")
    with filelock.FileLock(str(Path(cfg.SYSTEM.OUTPUT_ROOT) / "stand_in.lock")):
        pass
    _run(cfg, "leveled")


def leveled_status(cfg):
    return _status(cfg, "leveled")


def _status(cfg, name):
    out = _stage_dir(cfg, name)
    return manifest_status(out, _settings(cfg), reads=[], writes=[out],
                           outputs_ok=lambda: (out / "output.txt").exists())


def first_status(cfg):
    return _status(cfg, "first")


def second_status(cfg):
    return _status(cfg, "second")


def failing_status(cfg):
    return _status(cfg, "failing")


def _wait_for(path: Path) -> None:
    for _ in range(1200):
        if path.exists():
            return
        time.sleep(0.05)
    raise DataError(f"{path} never appeared")


def shared(cfg):
    """Builds the folder several runs share (as the dataset is), once the test creates ``go`` in the output root:
    the test decides when the lock is given up, so the other run's wait is certain, not a matter of timing."""
    root = Path(cfg.SYSTEM.OUTPUT_ROOT)
    (root / "building").touch()
    _wait_for(root / "go")
    _run(cfg, "shared")


def shared_status(cfg):
    return _status(cfg, "shared")


def _per_run_dir(cfg):
    return layout.run_dir(cfg) / "user"


def user(cfg):
    """A per-run stage that reads what ``shared`` wrote, as pretraining reads the dataset."""
    text = (_stage_dir(cfg, "shared") / "output.txt").read_text()
    _run(cfg, f"user:{cfg.PRETRAIN.ID}", {"input": text}, out=_per_run_dir(cfg))


def user_status(cfg):
    source = _stage_dir(cfg, "shared") / "output.txt"
    out = _per_run_dir(cfg)
    return manifest_status(out, {"input": source.read_text() if source.exists() else None}, reads=[source],
                           writes=[out], outputs_ok=lambda: (out / "output.txt").exists())


def sleeper(cfg):
    """A long stage with a child process of its own, as pretraining has: both PIDs go to ``pids.txt``."""
    root = Path(cfg.SYSTEM.OUTPUT_ROOT)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (root / "pids.txt").write_text(f"{os.getpid()} {child.pid}\n")
    for tick in range(6000):
        print(f"tick {tick}", flush=True)
        time.sleep(0.1)


def stubborn(cfg):
    """A stage that will not stop on SIGTERM (nor will its child): only a second signal to main() ends it."""
    import signal

    root = Path(cfg.SYSTEM.OUTPUT_ROOT)
    signal.signal(signal.SIGTERM, lambda signum, frame: print("ignoring SIGTERM", flush=True))
    child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                              "signal.SIG_IGN); time.sleep(600)"])
    (root / "pids.txt").write_text(f"{os.getpid()} {child.pid}\n")
    for tick in range(6000):
        print(f"tick {tick}", flush=True)
        time.sleep(0.1)


def _tick_in_a_worker(root: Path) -> None:
    (root / "pids.txt").write_text(f"{os.getppid()} {os.getpid()}\n")
    for tick in range(6000):
        print(f"tick {tick}", flush=True)
        time.sleep(0.1)


def pooled(cfg):
    """A stage whose work runs in a pool of worker processes, as the dataset stage's does (``dataset.workers``)."""
    from dataset.workers import run_jobs

    for _ in run_jobs(_tick_in_a_worker, [Path(cfg.SYSTEM.OUTPUT_ROOT)], 1, str):
        pass


def disk_full(cfg):
    print("disk_full: writing")
    raise OSError(errno.ENOSPC, "No space left on device", str(Path(cfg.SYSTEM.OUTPUT_ROOT) / "big.bin"))


def estimate_bytes(cfg):
    """Every stage of this module needs more than any disk has when the test asks for it."""
    return 10 ** 18 if (Path(cfg.SYSTEM.OUTPUT_ROOT) / "want_the_moon").exists() else 0


def _stage(name, section, entry, status, folder=layout.run_dir):
    return Stage(name, section, entry, status, folder, estimate_bytes)


TWO_STAGES = (_stage("first", "DATASET", first, first_status), _stage("second", "PRETRAIN", second, second_status))
WITH_READER = (_stage("first", "DATASET", first, first_status), _stage("reader", "PRETRAIN", reader, reader_status))
WITH_FAILURE = (_stage("first", "DATASET", first, first_status),
                _stage("failing", "PRETRAIN", failing, failing_status),
                _stage("second", "FINETUNE", second, second_status))
SHARED = (_stage("shared", "DATASET", shared, shared_status, lambda cfg: _stage_dir(cfg, "shared")),
          _stage("user", "PRETRAIN", user, user_status))
SLEEPING = (_stage("sleeper", "DATASET", sleeper, second_status),)
STUBBORN = (_stage("sleeper", "DATASET", stubborn, second_status),)
POOLED = (_stage("sleeper", "DATASET", pooled, second_status),)
DISK_FULL = (_stage("disk_full", "DATASET", disk_full, second_status),)
LEVELED = (_stage("leveled", "DATASET", leveled, leveled_status),)


if __name__ == "__main__":
    import main
    # The stages as functions of ``tests.runner_test_stages`` (not of ``__main__``): a stage's child process finds
    # its entry function by module and name.
    from tests import runner_test_stages

    sys.exit(main.main(sys.argv[2:], stages=getattr(runner_test_stages, sys.argv[1])))
