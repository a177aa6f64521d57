"""A model folder's files: written in one step (``write_model_folder``), and checked before a library opens them.

A safetensors file is an 8-byte little-endian header length, a JSON header of each tensor's byte range, then the
data. One cut short (an interrupted copy, a full disk) holds fewer bytes than its header promises, and safetensors'
own error ("incomplete metadata") names no file; reading the header is one small read, so it is checked every load.
"""
import ctypes
import json
import os
import shutil
import struct
from pathlib import Path

from pipeline.errors import DataError

_LENGTH_BYTES = 8


def _data_end(header: dict) -> int:
    """The end of the last tensor's byte range, relative to the start of the data."""
    ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
    if not all(isinstance(end, int) for end in ends):
        raise ValueError("a tensor's data_offsets are not integers")
    return max(ends, default=0)


def safetensors_problem(path) -> str:
    """Why ``path`` is not a complete safetensors file, or "" when its header and its size agree."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(_LENGTH_BYTES)
        if len(head) < _LENGTH_BYTES:
            return f"{size} bytes, too short for a safetensors header"
        (length,) = struct.unpack("<Q", head)
        if length > size - _LENGTH_BYTES:
            return f"its header announces {length:,} bytes of metadata, the whole file has {size:,}"
        try:
            header = json.loads(f.read(length))
            end = _data_end(header)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return "its header is not a safetensors header"
    data = size - _LENGTH_BYTES - length
    if end != data:
        return f"its tensors take {end:,} bytes of data, the file holds {data:,}"
    return ""


def check_weight_files(model_path) -> None:
    """DataError naming the first ``*.safetensors`` file of the folder ``model_path`` that is truncated or damaged.
    A hub name (no such folder) passes: the hub download checks its own files."""
    for path in sorted(Path(model_path).glob("*.safetensors")):
        problem = safetensors_problem(path)
        if problem:
            raise DataError(f"{path} is truncated or damaged ({problem}): copy it again, or rerun what wrote it")


_RENAME_EXCHANGE = 2  # renameat2 flag (Linux): swap two paths in one step


def _swap(a: Path, b: Path) -> bool:
    """Swap two existing folders atomically (Linux ``renameat2``); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        at_fdcwd = -100
        return libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0
    except (AttributeError, OSError):
        return False


def _current_umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc): setting one to read it back would
    leave any other thread creating a file in that instant without the user's."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _respect_umask(folder: Path) -> None:
    """Give every file in ``folder`` the mode a plain ``open`` gives: safetensors writes through a private temporary
    file (mode 0600), so ``model.safetensors`` alone was closed to the group and others that its neighbours (0644
    under umask 022) are open to."""
    mode = 0o666 & ~_current_umask()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)


def write_model_folder(model, tokenizer, output_dir, write_more=None) -> None:
    """``save_pretrained`` of model and tokenizer (and ``write_more(folder)``'s files) into a temporary sibling
    folder, then put in place of ``output_dir``: a crash never leaves a half-written model, and an existing model is
    swapped for the new one in one step, so that a reader always finds one of the two (where the system cannot
    swap, the old one is moved aside just before the rename)."""
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_dir.with_name(f".{output_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if write_more is not None:
        write_more(tmp)
    _respect_umask(tmp)
    if output_dir.is_dir() and _swap(tmp, output_dir):
        shutil.rmtree(tmp, ignore_errors=True)  # now the old model
        return
    old = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}")
    if output_dir.exists():
        os.replace(output_dir, old)
    os.replace(tmp, output_dir)
    shutil.rmtree(old, ignore_errors=True)
