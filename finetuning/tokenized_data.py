"""A job's data, tokenized: a GLUE task (local folder or the Hub) or a task of one's own (files, a dataset).

Token ids are stored unpadded (flat arrays plus offsets), so that batches are padded only to their own longest row.
``load_encoded`` tokenizes a GLUE split once for every job of the task, under a key of all that changes the ids.
"""
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from finetuning.glue_data import HUB_DATASET, glue_splits, load_split, local_split_path, locate_split
from finetuning.glue_tasks import GlueTask, get_task, predicting_task
from finetuning.own_data import own_task
from pipeline.errors import DataError
from pipeline.run_ids import short_hash

_TOKENIZE_CHUNK = 2000  # rows per call to the Rust tokenizer: large enough to amortise the call, small in memory


@dataclass
class EncodedSplit:
    input_ids: np.ndarray  # int32, every row's ids back to back
    token_type_ids: np.ndarray  # int8, aligned with input_ids
    offsets: np.ndarray  # int64 [N + 1]: row i is input_ids[offsets[i]:offsets[i + 1]]
    labels: Optional[np.ndarray]  # int64 class ids or float32 scores (a token split: each word's tag id); None = test
    index: list  # the server's row ids, as strings
    # Token classification (finetuning.token_encoding) only, each aligned with input_ids: the label id a token is
    # trained on (-100: none), and the word whose first piece a token is (-1: not a first piece); and each row's
    # word count, truncated words included.
    token_labels: Optional[np.ndarray] = None  # int64; None for test splits
    word_index: Optional[np.ndarray] = None  # int32
    word_counts: Optional[np.ndarray] = None  # int64 [N]

    @classmethod
    def of_rows(cls, ids: list, types: list, labels, index, **token_fields) -> "EncodedSplit":
        """The rows' ids and type ids (one array per row) back to back."""
        offsets = np.concatenate([[0], np.cumsum([len(row) for row in ids], dtype=np.int64)])
        return cls(np.concatenate(ids or [np.zeros(0, np.int32)]), np.concatenate(types or [np.zeros(0, np.int8)]),
                   offsets, labels, list(index), **token_fields)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int):
        start, end = self.offsets[i], self.offsets[i + 1]
        return self.input_ids[start:end], self.token_type_ids[start:end]


def encode_split(tokenizer, split, max_seq_length: int, is_regression: bool) -> EncodedSplit:
    ids, types = [], []
    for start in range(0, len(split), _TOKENIZE_CHUNK):
        end = start + _TOKENIZE_CHUNK
        text_b = split.text_b[start:end] if split.text_b is not None else None
        encoded = tokenizer(split.text_a[start:end], text_b, truncation=True, max_length=max_seq_length,
                            return_token_type_ids=True, return_attention_mask=False)
        ids += [np.asarray(row, dtype=np.int32) for row in encoded["input_ids"]]
        types += [np.asarray(row, dtype=np.int8) for row in encoded["token_type_ids"]]
    labels = None if split.labels is None else np.asarray(split.labels, np.float32 if is_regression else np.int64)
    return EncodedSplit.of_rows(ids, types, labels, split.index)


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of the tokenizer's whole definition (vocabulary, normalizer, special tokens)."""
    definition = tokenizer.backend_tokenizer.to_str() if getattr(tokenizer, "is_fast", False) else repr(
        sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(definition.encode()).hexdigest()[:16]


def _source_fingerprint(task, kind: str, name: str, data_dir: str, hub_path: str):
    if not data_dir:
        return [hub_path, task.hub_config, kind, name]
    path = local_split_path(data_dir, task, locate_split(task, kind, name)[0])
    stat = path.stat() if path.exists() else None
    return [str(path), stat.st_size if stat else None, stat.st_mtime_ns if stat else None]


def _save(path: Path, encoded: EncodedSplit) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    arrays = {"input_ids": encoded.input_ids, "token_type_ids": encoded.token_type_ids, "offsets": encoded.offsets,
              "index": np.asarray(encoded.index, dtype=str), "labels": encoded.labels}
    with open(tmp, "wb") as f:
        np.savez(f, **{name: array for name, array in arrays.items() if array is not None})
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


TEST_NAME = "test"  # an own task's predictions go to predictions_test.tsv


@dataclass
class TaskData:
    task: GlueTask  # labels, metrics, regression
    train: Optional[EncodedSplit]
    dev: dict  # dev name -> EncodedSplit; the first one is also evaluated during training
    test: dict  # predictions file name -> (GlueTask, EncodedSplit)


def _glue(data_args, args, tokenizer) -> TaskData:
    task = get_task(data_args.task_name)
    if task.train is None:
        raise DataError(f"{task.name} has no training data: it is predicted by the {predicting_task(task.name)} jobs")
    key, d = tokenizer_fingerprint(tokenizer), data_args
    splits = glue_splits(task, args.do_train, args.do_eval, args.do_predict, d.max_train_samples, d.max_eval_samples,
                         d.max_predict_samples)
    loaded = [(owner, kind, name, load_encoded(owner, kind, name, tokenizer, d.max_seq_length, d.data_dir, rows,
                                               d.tokenized_cache_dir, d.hub_dataset, key, d.overwrite_cache,
                                               d.malformed_rows)) for owner, kind, name, rows in splits]
    return TaskData(task, next((split for _, kind, _, split in loaded if kind == "train"), None),
                    {name: split for _, kind, name, split in loaded if kind == "dev"},
                    {name: (owner, split) for owner, kind, name, split in loaded if kind == "test"})


def _own(data_args, model_args, args, tokenizer) -> TaskData:
    if data_args.dataset_name:  # the training split also names the labels
        wanted = {"train": True, "validation": args.do_eval, "test": args.do_predict}
    else:
        wanted = {"train": bool(data_args.train_file), "validation": bool(data_args.validation_file),
                  "test": bool(data_args.test_file) and args.do_predict}
    task, splits = own_task(data_args, wanted, model_args.cache_dir, model_args.token)

    def encoded(split, rows):
        return encode_split(tokenizer, splits[split].head(rows or 0), data_args.max_seq_length, task.is_regression)

    return TaskData(task, encoded("train", data_args.max_train_samples) if args.do_train else None,
                    {"validation": encoded("validation", data_args.max_eval_samples)} if args.do_eval else {},
                    {TEST_NAME: (task, encoded("test", data_args.max_predict_samples))} if "test" in splits else {})


def load_task_data(model_args, data_args, args, tokenizer) -> TaskData:
    """The tokenized splits that ``--do_train``/``--do_eval``/``--do_predict`` need, all read before any training,
    so that a data problem stops the job at once."""
    if data_args.task_name:
        return _glue(data_args, args, tokenizer)
    return _own(data_args, model_args, args, tokenizer)
