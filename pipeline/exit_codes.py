"""The exit codes of ``main.py`` (and of a stage's process), in one place, and the one-line reporting of the
errors that map onto them. docs/interfaces.md has the table for users."""
import sys

from pipeline.errors import ConfigError, ExtremeBertError

OK = 0
FAILED = 1  # a stage failed, or another error with a one-line message
CONFIG = 2  # the config is invalid
DISK = 3  # a folder is not writable or too full (pipeline.disk)
BUSY = 4  # another run holds a folder and --no-wait was given (pipeline.locks)
SIGNAL_BASE = 128  # + the signal's number when a signal stopped the run, as shells report it


def run_reporting_errors(call) -> int:
    """``call()``'s exit code (it returns one; None counts as OK); an error meant for the user becomes one
    ``error:`` line on stderr and its own exit code instead of a traceback: a ConfigError one line per problem and
    CONFIG, another ExtremeBertError its ``exit_code`` (default FAILED), an OSError of a full or read-only disk DISK."""
    from pipeline.disk import describe, is_disk_error

    try:
        code = call()
        return OK if code is None else code
    except ConfigError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        return CONFIG
    except ExtremeBertError as e:
        print(f"error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", FAILED)
    except OSError as e:
        if not is_disk_error(e):
            raise
        print(f"error: {describe(e)}", file=sys.stderr)
        return DISK
