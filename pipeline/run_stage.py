"""Child-process entry for one stage: ``python -m pipeline.run_stage MODULE:FUNCTION RESOLVED_CONFIG.yaml``.

The pipeline runs each stage in its own process so that DeepSpeed's launcher and GPU groups work, memory is
returned between stages, and a crash in one stage cannot corrupt the runner's state. The runner starts this
process as the leader of a new process group (see ``pipeline.stage_process``); here it makes sure the group dies
with the runner, and turns a full or read-only disk into one line and exit code 3.
"""
import ctypes
import pkgutil
import os
import signal
import sys

from pipeline import exit_codes
from pipeline.config import load_resolved_config
from pipeline.stage_process import RUNNER_PID_ENV

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _stop_group(signum, frame):
    """Pass the signal on to every process this stage started, then end as the signal says."""
    signal.signal(signum, signal.SIG_DFL)
    os.killpg(os.getpgrp(), signum)


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
    if len(argv) != 2 or ":" not in argv[0]:
        print("usage: python -m pipeline.run_stage MODULE:FUNCTION RESOLVED_CONFIG.yaml", file=sys.stderr)
        return 2
    die_with_runner()
    module_name, function_name = argv[0].split(":", 1)
    cfg = load_resolved_config(argv[1])
    entry = pkgutil.resolve_name(f"{module_name}:{function_name}")  # the one function named by a string: across
    #                                                                    the process boundary, from runner.STAGES

    def run_entry() -> int:
        entry(cfg)  # an entry returns facts for in-process callers (e.g. the manifest), not an exit code
        return exit_codes.OK

    try:
        return exit_codes.run_reporting_errors(run_entry)
    except KeyboardInterrupt:
        print("interrupted (SIGINT)", file=sys.stderr)
        return exit_codes.SIGNAL_BASE + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
