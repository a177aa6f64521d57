"""How every ExtremeBERT process logs: one format, one choice of level, and a stage's log file that keeps DEBUG.

The format keeps the lines users and tests already read: an INFO line is the message alone, any other level is
tagged as the error lines always were (``warning: ...``, ``error: ...``, ``debug: ...``); another library's record
also names its logger (``debug: filelock: ...``). INFO and DEBUG go to stdout, WARNING and above to stderr.
transformers, datasets, huggingface_hub and DeepSpeed print through handlers of their own, in their own format.

The level is SYSTEM.LOG_LEVEL, or ``--quiet`` (WARNING: warnings, errors and the final summary) and ``--verbose``
(DEBUG, the libraries' debug output included) on main.py and every script. The noise of transformers, datasets,
huggingface_hub, DeepSpeed and torch stays at WARNING unless the level is DEBUG.

Under main.py a stage's stdout is copied to the console and to ``logs/<stage>.log`` (orchestration.stage_process).
The stage's records at the console level or above reach the log that way; those below it (DEBUG, or INFO under
--quiet) are appended to the same file by a FileHandler, so that the log keeps every line once. A FileHandler line
can land a moment before console lines written just ahead of it, which still pass through the copy.

The level and the log file are handed down through the environment (``LEVEL_ENV``, ``LOG_FILE_ENV``): DeepSpeed's
ranks, worker processes and finetuning jobs start with what their parent chose, whatever their argument lists.
"""
import logging
import os
import sys
from typing import Optional

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LEVEL_FLAGS = ("--quiet", "--verbose")  # every script's, declared once by add_level_flags
LEVEL_ENV = "EXTREMEBERT_LOG_LEVEL"
LOG_FILE_ENV = "EXTREMEBERT_LOG_FILE"
OWN_LOGGERS = ("main", "__main__", "pipeline", "dataset", "pretraining", "finetuning", "orchestration", "scripts")
# Libraries that print with a handler of their own (they keep their format): their level is set here and, for the ones
# not imported yet and for child processes, by the variable each reads when it is first imported.
LIBRARY_VERBOSITY_ENV = {"transformers": "TRANSFORMERS_VERBOSITY", "datasets": "DATASETS_VERBOSITY",
                         "huggingface_hub": "HF_HUB_VERBOSITY", "DeepSpeed": None}
QUIET_ENV = ("HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS")  # no library bars under --quiet
_OURS = "_extremebert_handler"  # marks the handlers setup_logging installed, so that a second call replaces them


class LineFormatter(logging.Formatter):
    """The one format: ``message`` at INFO, ``level: message`` otherwise; ``level: logger: message`` for a
    library's record, so that --verbose says where a line comes from."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        ours = record.name.split(".")[0] in OWN_LOGGERS
        source = "" if ours or record.name == "root" else f"{record.name}: "
        if record.levelno == logging.INFO and ours:
            return message
        return f"{record.levelname.lower()}: {source}{message}"


class ConsoleHandler(logging.Handler):
    """stdout below WARNING, stderr from WARNING up; the streams are looked up at each record, so that a caller who
    swaps ``sys.stdout`` (a test capturing output) sees the lines."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


class _BelowLevel(logging.Filter):
    """Lets through only the records the console does not show: the log file gets those from the console copy."""

    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def chosen_level(args=None, configured: Optional[str] = None) -> str:
    """The level a process runs at: ``--quiet``/``--verbose`` when given, else ``configured`` (SYSTEM.LOG_LEVEL),
    else what the parent process handed down, else INFO."""
    if args is not None and getattr(args, "quiet", False):
        return "WARNING"
    if args is not None and getattr(args, "verbose", False):
        return "DEBUG"
    return configured or os.environ.get(LEVEL_ENV) or "INFO"


def add_level_flags(parser) -> None:
    """``--quiet`` and ``--verbose`` (exclusive), as main.py and every script take them."""
    group = parser.add_mutually_exclusive_group()
    quiet, verbose = LEVEL_FLAGS
    group.add_argument(quiet, action="store_true",
                       help="print only warnings, errors and the final summary (a stage's log file keeps the rest)")
    group.add_argument(verbose, action="store_true", help="print debug lines, the libraries' included")


def library_level(level: str) -> int:
    """The libraries' level for our ``level``: their debug output only when ours is DEBUG, never below WARNING."""
    number = logging.getLevelName(level)
    return logging.DEBUG if number == logging.DEBUG else max(number, logging.WARNING)


def setup_logging(level: str = "INFO", log_file=None) -> None:
    """Configure this process's logging (again, if it was): the console at ``level``; with ``log_file``, the
    records below ``level`` appended there. The choice is handed down to the processes this one starts."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    console_level = logging.getLevelName(level)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
        handler.close()
    handlers = [ConsoleHandler(console_level)]
    if log_file and console_level > logging.DEBUG:
        to_file = logging.FileHandler(log_file, mode="a", encoding="utf-8", delay=True)
        to_file.setLevel(logging.DEBUG)
        to_file.addFilter(_BelowLevel(console_level))
        handlers.append(to_file)
    for handler in handlers:
        handler.setFormatter(LineFormatter())
        setattr(handler, _OURS, True)
        root.addHandler(handler)
    ours = logging.DEBUG if len(handlers) > 1 else console_level
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(ours)
    _set_library_levels(library_level(level))
    root.setLevel(library_level(level))  # the loggers of other libraries (torch, urllib3, ...) inherit it
    _hand_down(level, log_file)


def _set_library_levels(number: int) -> None:
    for name, variable in LIBRARY_VERBOSITY_ENV.items():
        logging.getLogger(name).setLevel(number)
        logging.getLogger(name).propagate = False  # its own handler prints it: through ours too, it would print twice
        if variable and number == logging.DEBUG:
            os.environ[variable] = "debug"
        elif variable:  # a verbosity the user set for one library is kept
            os.environ.setdefault(variable, logging.getLevelName(number).lower())


def _hand_down(level: str, log_file) -> None:
    os.environ[LEVEL_ENV] = level
    if log_file:
        os.environ[LOG_FILE_ENV] = str(log_file)
    else:
        os.environ.pop(LOG_FILE_ENV, None)
    if logging.getLevelName(level) > logging.INFO:
        for variable in QUIET_ENV:
            os.environ.setdefault(variable, "1")


def setup_script_logging(args=None) -> None:
    """A script's (or a worker process's) logging: its flags, else the level and log file its parent handed down
    (a stage's), else INFO on the console alone."""
    setup_logging(chosen_level(args), os.environ.get(LOG_FILE_ENV))


def progress_bars() -> bool:
    """Whether progress bars belong on the console: not under --quiet."""
    consoles = [h for h in logging.getLogger().handlers if isinstance(h, ConsoleHandler)]
    return not consoles or consoles[0].level <= logging.INFO


def warn_notes(logger: logging.Logger, notes: list) -> None:
    """The scripts' notes on flags that have no effect or were adjusted (``note: ...`` lines), as warnings."""
    for note in notes:
        logger.warning(note.removeprefix("note: "))
