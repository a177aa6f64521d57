"""Check a model folder's safetensors files before a library opens them, so that a damaged one is named.

A safetensors file is an 8-byte little-endian header length, a JSON header giving each tensor's byte range, then
the tensor data. A file cut short (an interrupted copy or download, a full disk) holds fewer bytes than its header
promises; safetensors then fails with "incomplete metadata" or "invalid header length", and says not which file.
Reading the header costs one small read per file, so the check runs before every load.
"""
import json
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
    folder = Path(model_path)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.safetensors")):
        problem = safetensors_problem(path)
        if problem:
            raise DataError(f"{path} is truncated or damaged ({problem}): copy it again, or rerun what wrote it")
