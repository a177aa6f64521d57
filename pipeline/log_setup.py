"""How every ExtremeBERT process logs: an INFO line of ours is the message alone, any other is tagged (``warning:
...``; a library's also names its logger), INFO and DEBUG go to stdout, WARNING and up to stderr. A stage's
``logs/<stage>.log`` gets the console's copy from the runner and, from a FileHandler here, the records below the
console's level. Level and log file are handed down through the environment, so that DeepSpeed's ranks, workers
and finetuning jobs start with what their parent chose, whatever their argument lists.
"""
import logging
import os
import sys
from typing import Optional

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LEVEL_FLAGS = ("--quiet", "--verbose")  # every script's, declared once by add_level_flags
LEVEL_ENV = "EXTREMEBERT_LOG_LEVEL"
LOG_FILE_ENV = "EXTREMEBERT_LOG_FILE"
OWN_LOGGERS = ("main", "__main__", "pipeline", "dataset", "pretraining", "finetuning", "orchestration", "scripts",
               "publishing", "quickstart")
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


def chosen_level(args=None, configured: Optional[str] = None) -> str:
    """The level a process runs at: ``--quiet``/``--verbose`` when given, else ``configured`` (SYSTEM.LOG_LEVEL),
    else what the parent process handed down, else INFO."""
    if getattr(args, "quiet", False):
        return "WARNING"
    if getattr(args, "verbose", False):
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
        # only what the console does not show: the file gets the rest from the console's copy
        to_file.addFilter(lambda record: record.levelno < console_level)
        handlers.append(to_file)
    for handler in handlers:
        handler.setFormatter(LineFormatter())
        setattr(handler, _OURS, True)
        root.addHandler(handler)
    for name in OWN_LOGGERS:  # DEBUG when the log file takes what the console does not show
        logging.getLogger(name).setLevel(logging.DEBUG if len(handlers) > 1 else console_level)
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


def format_duration(seconds: float) -> str:
    """A duration or an ETA on the console, the same in every long stage: ``45s``, ``3m12s``, ``2h05m``, ``3d04h``
    (never more precise than an estimate deserves)."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
