"""The edges of the disk: before a stage starts, its folder must be writable and have room for what the stage will
write; an OSError saying the disk is full or read-only becomes one line and exit code 3 instead of a traceback.

A stage may declare an ``estimate`` (``cfg -> int``, in ``pipeline.runner.STAGES``), a rough upper bound of what it writes; stages
without one get DEFAULT_ESTIMATE_BYTES. What the stage's folders already hold counts as written (a resumed stage
mostly keeps it), and MARGIN_BYTES come on top.
"""
import errno
import os
import shutil
import tempfile
from pathlib import Path

from pipeline import exit_codes
from pipeline.errors import ExtremeBertError

DEFAULT_ESTIMATE_BYTES = 64 * 2**20  # a stage without an estimate: logs, manifests, small result files
MARGIN_BYTES = 16 * 2**20  # asked on top of every estimate: the log and the manifests of a resumed stage
REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


class DiskError(ExtremeBertError):
    """The output folder cannot be written or has too little free space."""

    exit_code = exit_codes.DISK


def is_disk_error(error: BaseException) -> bool:
    """True for the OSErrors that mean "this disk cannot take our output", as opposed to a bug or missing input."""
    return isinstance(error, OSError) and error.errno in REASONS


def describe(error: OSError) -> str:
    """One line for a disk OSError: the path, what went wrong, how to get out of it."""
    where = error.filename or "the output folder"
    return (f"{where}: {REASONS[error.errno]}; free some space or fix the permissions (or set SYSTEM.OUTPUT_ROOT "
            f"to another disk), then rerun: complete stages are skipped")


def human(num_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if num_bytes < 1000:
            return f"{num_bytes:.0f} {unit}"
        num_bytes /= 1000
    return f"{num_bytes:.0f} EB"


def check_writable(folder) -> None:
    """Create ``folder`` if needed and a file in it; DiskError when the disk refuses."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        if not is_disk_error(e):
            raise
        raise DiskError(f"{folder} is not writable ({REASONS[e.errno]}): set SYSTEM.OUTPUT_ROOT to a writable "
                        f"folder, or fix its permissions") from None


def folder_bytes(paths) -> int:
    """Bytes of every file under ``paths`` (files or folders; missing ones count 0)."""
    total = 0
    for path in map(Path, paths):
        if path.is_file():
            total += path.stat().st_size
            continue
        for parent, _, files in os.walk(path):
            for name in files:
                try:
                    total += os.lstat(os.path.join(parent, name)).st_size
                except OSError:  # removed while we looked
                    pass
    return total


def check_free_space(folder, needed: int, stage: str) -> None:
    """DiskError when the file system of ``folder`` has less than ``needed`` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DiskError(f"{folder} has {human(free)} free but stage '{stage}' needs about {human(needed)}: free some "
                        f"space or set SYSTEM.OUTPUT_ROOT to a larger disk")
