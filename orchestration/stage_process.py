"""A stage's child process, both ends (docs/interfaces.md, "Stage processes, signals, logs"). The runner's side,
``run_logged``, makes sure nothing outlives the runner and nothing the stage printed is lost; the child's side,
``python -m orchestration.stage_process MODULE:FUNCTION RESOLVED_CONFIG.yaml [LOG_FILE]``, sets up logging and calls
the stage's entry function. Each stage runs in its own process so that DeepSpeed's launcher and GPU groups work,
memory is returned between stages, and a crash in one stage cannot corrupt the runner's state.
"""
import ctypes
import logging
import os
import pkgutil
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pipeline.config import load_resolved_config
from pipeline.errors import ExitCode, run_reporting_errors
from pipeline.log_setup import setup_logging

log = logging.getLogger(__name__)

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
RUNNER_PID_ENV = "EXTREMEBERT_RUNNER_PID"  # tells the child which parent to die with
POLL_S = 1.0  # how often the copy loop looks whether the child is still there while its output is quiet
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class Outcome:
    returncode: int
    interrupted_by: Optional[int]  # the signal the runner received and passed on, if any

    @property
    def reason(self) -> str:
        if self.interrupted_by:
            return f"interrupted by {signal.Signals(self.interrupted_by).name}"
        if self.returncode < 0:
            return f"killed by {signal.Signals(-self.returncode).name}"
        return "done" if self.returncode == 0 else f"failed with exit code {self.returncode}"


class _Output:
    """The console and the log file; each switches itself off when writing to it fails."""

    def __init__(self, log_file: Path):
        self.console = sys.stdout.buffer
        try:
            self.log = open(log_file, "ab", buffering=0)  # unbuffered: every chunk is a write(2)
        except OSError as e:
            self.log = None
            log.warning(f"cannot open the log {log_file} ({e.strerror}); output goes to the console only")
        self.log_file = log_file

    def write(self, chunk: bytes, to_console: bool = True) -> None:
        if to_console and self.console is not None:
            try:
                self.console.write(chunk)
                self.console.flush()
            except OSError:  # the terminal went away (SIGHUP) or a closed pipe: keep logging
                self.console = None
        if self.log is not None:
            try:
                self.log.write(chunk)
            except OSError as e:
                self.log.close()
                self.log = None
                log.warning(f"stopped writing {self.log_file} ({e.strerror}); output goes to the console only")

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


class _SignalForwarder:
    """While installed, SIGTERM/SIGINT/SIGHUP to this process stop the child's process group instead of this one."""

    def __init__(self):
        self.received = None
        self.group = None
        self._previous = {}

    def __enter__(self):
        for sig in FORWARDED_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (a runner driven from a worker thread): signals stay as they are
                break
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        first = self.received is None
        self.received = self.received or signum
        if self.group is not None:
            self.stop_group(signal.SIGTERM if first else signal.SIGKILL)

    def started(self, pid: int) -> None:
        self.group = pid  # the child leads its own group
        if self.received is not None:  # a signal came while the child was being started
            self.stop_group(signal.SIGTERM)

    def stop_group(self, sig=signal.SIGTERM) -> None:
        try:
            os.killpg(self.group, sig)
        except ProcessLookupError:  # every process of the group has ended
            pass


def run_logged(command: list, env: dict, log_file: Path, cwd=None) -> Outcome:
    """Run ``command`` in its own process group; its output goes to the console and is appended to ``log_file``,
    which then ends with the reason it stopped."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    output = _Output(log_file)
    output.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode(), to_console=False)
    started = time.time()
    env = dict(env, **{RUNNER_PID_ENV: str(os.getpid())})
    try:
        with _SignalForwarder() as forwarder:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, env=env, cwd=cwd, process_group=0)
            forwarder.started(process.pid)
            _copy_until_closed(process, forwarder, output)
            outcome = Outcome(process.wait(), forwarder.received)
        output.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} stage {outcome.reason} after "
                     f"{time.time() - started:.1f}s\n".encode(), to_console=False)
    finally:
        output.close()
    return outcome


def _copy_until_closed(process: subprocess.Popen, forwarder: _SignalForwarder, output: _Output) -> None:
    """Copy raw chunks rather than lines, so that progress bars ('\\r' updates) stay live on the console, until
    every process holding the output has closed it."""
    fd = process.stdout.fileno()
    orphans_stopped = False
    while True:
        ready, _, _ = select.select([fd], [], [], POLL_S)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            output.write(chunk)
        elif process.poll() is not None and not orphans_stopped:
            # The stage's own process is gone but something it started still holds the output: stop it too.
            forwarder.stop_group(signal.SIGTERM)
            orphans_stopped = True
    process.stdout.close()


# The child's side.


def _release_semaphores() -> None:
    """Run multiprocessing's exit-time finalizers, as a normal exit would: they unlink the named semaphores of this
    process's worker-pool queues. A stage ended by a signal skipped them, and multiprocessing's resource tracker
    (which ignores SIGTERM and outlives the stage) then printed 'leaked semaphore objects' on every interrupt."""
    util = sys.modules.get("multiprocessing.util")  # not imported: this process made no semaphores
    if util is not None:
        util._run_finalizers(0)  # priority >= 0: the semaphores and queues; not the joins of threads and children


def _stop_group(signum, frame):
    """Pass the signal on to every process this stage started, then end as the signal says."""
    signal.signal(signum, signal.SIG_IGN)
    os.killpg(os.getpgrp(), signum)
    _release_semaphores()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def die_with_runner() -> None:
    """On Linux, have the kernel send SIGTERM when the runner dies, even by SIGKILL; the handler passes it on to the
    group, so pretraining still gets to write its checkpoint and nothing is left running orphaned."""
    runner_pid = os.environ.get(RUNNER_PID_ENV)
    if runner_pid is None or os.getpgrp() != os.getpid():  # started by hand, not as a group leader by the runner
        return
    signal.signal(signal.SIGTERM, _stop_group)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(runner_pid):  # the runner died before the request took effect
        _stop_group(signal.SIGTERM, None)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3) or ":" not in argv[0]:
        print("usage: python -m orchestration.stage_process MODULE:FUNCTION RESOLVED_CONFIG.yaml [LOG_FILE]",
              file=sys.stderr)
        return 2
    die_with_runner()
    cfg = load_resolved_config(argv[1])
    setup_logging(cfg.SYSTEM.LOG_LEVEL, argv[2] if len(argv) == 3 else None)
    entry = pkgutil.resolve_name(argv[0])  # the one function named by a string: across the process boundary

    def run_entry() -> int:
        entry(cfg)  # an entry returns facts for in-process callers (e.g. the manifest), not an exit code
        return ExitCode.OK

    try:
        return run_reporting_errors(run_entry)
    except KeyboardInterrupt:
        print("interrupted (SIGINT)", file=sys.stderr)
        return ExitCode.SIGNAL_BASE + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
