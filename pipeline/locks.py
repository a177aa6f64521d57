"""Advisory locks (``fcntl.flock``, dropped by the kernel however their process ends) on the folders stages write, so
that two runs on one OUTPUT_ROOT take turns: a writer holds a folder's lock exclusively, a reader shared. The lock
files and messages are described in docs/interfaces.md ("Locks").
"""
import fcntl
import logging
import os
import socket
import time
from pathlib import Path

from pipeline.errors import ExitCode, ExtremeBertError

log = logging.getLogger(__name__)


class FolderBusy(ExtremeBertError):
    """Another run holds the folder and we were asked not to wait (``main.py --no-wait``)."""

    exit_code = ExitCode.BUSY


def lock_path(folder, output_root) -> Path:
    """The lock file of ``folder``, a folder under ``output_root``."""
    relative = Path(folder).resolve().relative_to(Path(output_root).resolve())
    return Path(output_root) / "locks" / f"{'--'.join(relative.parts)}.lock"


def _holder(path: Path) -> str:
    """Who holds the lock, as its holder recorded it. Our own record is stale (a shared lock we just let go of
    to take it exclusively): then the holder is a reader that did not record itself (yet)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text if text and not text.startswith(f"PID {os.getpid()} ") else "another run"


class FolderLock:
    """A lock on one folder, taken with ``acquire`` and held until ``release`` or the end of the process; ``wait``
    says what to do when another run holds it: wait for it (printing one line), or raise FolderBusy."""

    def __init__(self, folder, output_root, wait: bool = True):
        self.folder = Path(folder)
        self.path = lock_path(folder, output_root)
        self.wait = wait
        self._fd = None

    def acquire(self, shared: bool = False) -> bool:
        """Take the lock, shared (to read the folder) or exclusive (to write it); a lock already held is released
        first, never converted in place, so two readers that both want to write cannot deadlock. Returns True when
        another run held the folder first: what it wrote may change the caller's plan."""
        self.release()
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            waited = not try_lock(fd, mode)
            if waited:
                holder = _holder(self.path)
                if not self.wait:
                    raise FolderBusy(f"{self.folder} is in use by {holder}; let that run finish, or leave out "
                                     f"--no-wait to wait for it")
                log.warning(f"waiting for {self.folder}: in use by {holder}")
                fcntl.flock(fd, mode)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._record_holder(shared)
        return waited

    def _record_holder(self, shared: bool) -> None:
        data = (f"PID {os.getpid()} on host {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
                f"{' (reading)' if shared else ''}\n").encode()
        try:  # write, then cut the rest: a waiting run reading it meanwhile never finds the file empty
            os.pwrite(self._fd, data, 0)
            os.ftruncate(self._fd, len(data))
        except OSError:  # a full disk: the lock holds all the same, only the waiting message is vaguer
            pass

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def try_lock(fd: int, mode: int) -> bool:
    """Take the flock ``mode`` on ``fd`` if no other process holds it; False (without waiting) when one does."""
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
