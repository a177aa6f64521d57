"""Tokenize a GLUE split once and keep it: every job of a task's search reuses the same token ids.

Token ids are stored unpadded (flat arrays plus offsets), so batches are padded only to their own longest row.
The cache key covers everything that changes the ids: the tokenizer's full definition, ``max_seq_length``, the
data source (file size and modification time for local files), the row cap and what the reader does with a
malformed row.
"""
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from finetuning.glue_data import HUB_DATASET, load_split, local_split_path
from pipeline.run_ids import short_hash

_TOKENIZE_CHUNK = 2000  # rows per call to the Rust tokenizer: large enough to amortise the call, small in memory


@dataclass
class EncodedSplit:
    input_ids: np.ndarray  # int32, every row's ids back to back
    token_type_ids: np.ndarray  # int8, aligned with input_ids
    offsets: np.ndarray  # int64 [N + 1]: row i is input_ids[offsets[i]:offsets[i + 1]]
    labels: Optional[np.ndarray]  # int64 class ids or float32 scores; None for test splits
    index: list  # the server's row ids, as strings

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int):
        start, end = self.offsets[i], self.offsets[i + 1]
        return self.input_ids[start:end], self.token_type_ids[start:end]


def encode_split(tokenizer, split, max_seq_length: int, is_regression: bool) -> EncodedSplit:
    ids, types, lengths = [], [], []
    for start in range(0, len(split), _TOKENIZE_CHUNK):
        end = start + _TOKENIZE_CHUNK
        text_b = split.text_b[start:end] if split.text_b is not None else None
        encoded = tokenizer(split.text_a[start:end], text_b, truncation=True, max_length=max_seq_length,
                            return_token_type_ids=True, return_attention_mask=False)
        for row_ids, row_types in zip(encoded["input_ids"], encoded["token_type_ids"]):
            ids.append(np.asarray(row_ids, dtype=np.int32))
            types.append(np.asarray(row_types, dtype=np.int8))
            lengths.append(len(row_ids))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    labels = None
    if split.labels is not None:
        labels = np.asarray(split.labels, dtype=np.float32 if is_regression else np.int64)
    return EncodedSplit(np.concatenate(ids) if ids else np.zeros(0, np.int32),
                        np.concatenate(types) if types else np.zeros(0, np.int8), offsets, labels, list(split.index))


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the tokenizer's whole definition (vocabulary, normalizer, special tokens)."""
    definition = tokenizer.backend_tokenizer.to_str() if getattr(tokenizer, "is_fast", False) else repr(
        sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(definition.encode()).hexdigest()[:16]


def _source_fingerprint(task, kind: str, name: str, data_dir: str, hub_path: str):
    if not data_dir:
        return [hub_path, task.hub_config, kind, name]
    split = task.train if kind == "train" else (task.dev[name] if kind == "dev" else task.test[name])
    path = local_split_path(data_dir, task, split)
    stat = path.stat() if path.exists() else None
    return [str(path), stat.st_size if stat else None, stat.st_mtime_ns if stat else None]


def _save(path: Path, encoded: EncodedSplit) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    arrays = {"input_ids": encoded.input_ids, "token_type_ids": encoded.token_type_ids, "offsets": encoded.offsets,
              "index": np.asarray(encoded.index, dtype=str)}
    if encoded.labels is not None:
        arrays["labels"] = encoded.labels
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)  # concurrent writers produce identical files, so the last rename wins harmlessly


def _load(path: Path) -> Optional[EncodedSplit]:
    try:
        with np.load(path, allow_pickle=False) as data:
            labels = data["labels"] if "labels" in data.files else None
            return EncodedSplit(data["input_ids"], data["token_type_ids"], data["offsets"], labels,
                                data["index"].tolist())
    except (OSError, ValueError, KeyError):
        return None  # missing or torn: re-tokenize


def load_encoded(task, kind: str, name: str, tokenizer, max_seq_length: int, data_dir: str = "", max_rows: int = 0,
                 cache_dir: str = "", hub_path: str = HUB_DATASET, tokenizer_key: str = "",
                 overwrite_cache: bool = False, malformed_rows: str = "error") -> EncodedSplit:
    """The tokenized split, from ``cache_dir`` when it holds it (unless ``overwrite_cache``), else read, tokenized
    and (when ``cache_dir`` is set) cached. ``malformed_rows`` goes to the reader (``glue_data.read_local_split``);
    it is part of the key, so a split cached while skipping rows is read again, and fails, without skipping."""
    cache_path = None
    if cache_dir:
        key = short_hash({"tokenizer": tokenizer_key or tokenizer_fingerprint(tokenizer), "len": max_seq_length,
                          "source": _source_fingerprint(task, kind, name, data_dir, hub_path), "rows": max_rows,
                          "malformed_rows": malformed_rows}, length=12)
        cache_path = Path(cache_dir) / f"{kind}-{name}-{key}.npz"
        cached = None if overwrite_cache else _load(cache_path)
        if cached is not None:
            return cached
    split = load_split(task, kind, name, data_dir, hub_path, malformed_rows).head(max_rows)
    encoded = encode_split(tokenizer, split, max_seq_length, task.is_regression)
    if cache_path is not None:
        _save(cache_path, encoded)
    return encoded
