"""Errors that are part of the toolkit's interface, the exit codes they map onto, and the one way they are reported:
a one-line ``error:`` message meant for the user instead of a traceback. docs/interfaces.md has the table of exit
codes for users."""
import errno
import sys


class ExitCode:
    """The exit codes of ``main.py`` and of a stage's process."""

    OK = 0
    FAILED = 1  # a stage failed, or another error with a one-line message
    CONFIG = 2  # the config is invalid
    DISK = 3  # a folder is not writable or too full (pipeline.disk)
    BUSY = 4  # another run holds a folder and --no-wait was given (pipeline.locks)
    STOPPED = 5  # run_pretraining.py only: the run stopped for a reason a rerun meets again (it diverged, an early-stop
    #              rule); main.py reports it as a failed stage (1), with what to change instead of "rerun"
    SIGNAL_BASE = 128  # + the signal's number when a signal stopped the run, as shells report it


# The OSErrors that mean "this disk cannot take our output", as opposed to a bug or a missing input.
DISK_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


class ExtremeBertError(Exception):
    """Base class: the message says what is wrong and how to fix it. A subclass may set ``exit_code``."""


class ConfigError(ExtremeBertError):
    """The configuration is invalid. ``problems`` holds one line per problem (all of them, not only the first)."""

    exit_code = ExitCode.CONFIG

    def __init__(self, problems):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class DataError(ExtremeBertError):
    """Input data (a corpus, a GLUE folder, a samples folder) is missing or malformed."""


def is_disk_error(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in DISK_REASONS


def run_reporting_errors(call) -> int:
    """``call()``'s exit code (it returns one; None counts as OK); an error meant for the user becomes one
    ``error:`` line on stderr and its own exit code instead of a traceback: a ConfigError one line per problem and
    CONFIG, another ExtremeBertError its ``exit_code`` (default FAILED), an OSError of a full or read-only disk DISK."""
    try:
        code = call()
        return ExitCode.OK if code is None else code
    except ExtremeBertError as e:
        for problem in getattr(e, "problems", [str(e)]):
            print(f"error: {problem}", file=sys.stderr)
        return getattr(e, "exit_code", ExitCode.FAILED)
    except OSError as e:
        if not is_disk_error(e):
            raise
        print(f"error: {e.filename or 'the output folder'}: {DISK_REASONS[e.errno]}; free some space or fix the"
              f" permissions (or set SYSTEM.OUTPUT_ROOT to another disk), then rerun: complete stages are skipped",
              file=sys.stderr)
        return ExitCode.DISK


def first_line(error: BaseException) -> str:
    """The first line of a library's error message (its type name when it has none): what a one-line message quotes."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
