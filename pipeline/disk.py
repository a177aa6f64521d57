"""The edges of the disk: before a stage starts, its folder must be writable and have room for the stage's estimate
(``orchestration.stages.STAGES``), less what its folders already hold (a resumed stage keeps most), plus MARGIN_BYTES.
An OSError of a full or read-only disk becomes one line and exit code 3 (``pipeline.errors``).
"""
import os
import shutil
import tempfile
from pathlib import Path

from pipeline.errors import DISK_REASONS, ExitCode, ExtremeBertError, is_disk_error

DEFAULT_ESTIMATE_BYTES = 64 * 2**20  # a stage without an estimate: logs, manifests, small result files
MARGIN_BYTES = 16 * 2**20  # asked on top of every estimate: the log and the manifests of a resumed stage


class DiskError(ExtremeBertError):
    """The output folder cannot be written or has too little free space."""

    exit_code = ExitCode.DISK


def human(num_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if num_bytes < 1000:
            return f"{num_bytes:.0f} {unit}"
        num_bytes /= 1000
    return f"{num_bytes:.0f} EB"


def _blocker(folder: Path, error: OSError) -> str:
    """Why ``folder`` cannot be made, for an error that is not a disk's: the nearest existing path above it when that
    is a file (a file where OUTPUT_ROOT should be), else the system's reason (no folders can be made in /proc)."""
    existing = next((parent for parent in (folder, *folder.parents) if parent.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"{existing} is a file, not a folder"
    return f"{os.strerror(error.errno).lower()}: {error.filename}" if error.errno else str(error)


def check_writable(folder) -> None:
    """Create ``folder`` if needed and a file in it; DiskError when the disk refuses, or when the folder cannot be
    made at all (its path goes through a file, or through a file system that makes no folders, like /proc)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        if is_disk_error(e):
            raise DiskError(f"{folder} is not writable ({DISK_REASONS[e.errno]}): set SYSTEM.OUTPUT_ROOT to a "
                            f"writable folder, or fix its permissions") from None
        if folder.is_dir():
            raise
        raise DiskError(f"{folder} cannot be created ({_blocker(folder, e)}): set SYSTEM.OUTPUT_ROOT to a writable"
                        f" folder") from None


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
