"""One text shard -> one HDF5 sample shard (the job a sample worker runs). Format: docs/interfaces.md.

Sequences are masked in blocks of exactly ``MASK_BLOCK_ROWS`` rows with a generator seeded by (seed, split, shard
index), so the output depends on neither the worker count, the text batch size nor the memory cap. The file is
written under a temporary name and renamed when complete, with its sha256 computed from the final bytes.
"""
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.manifest import file_sha256

from dataset.masking import continuation_ids, mask_block, replacement_candidates
from dataset.packing import SequencePacker, iter_line_batches
from dataset.tokenizer_setup import raw_ids_tokenizer

MASK_BLOCK_ROWS = 1024
SPLIT_CODES = {"train": 0, "test": 1}


@dataclass(frozen=True)
class SampleOptions:
    max_seq_length: int = 128
    masking: str = "dynamic"  # static | dynamic
    masking_unit: str = "token"  # token | word (whole-word masking)
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    dup_factor: int = 1
    seed: int = 42
    packing: str = "full_sentences"  # full_sentences | document (dataset/packing.py)


@dataclass(frozen=True)
class ShardJob:
    text_path: str
    out_path: str
    split: str
    shard_index: int
    tokenizer_file: str
    tokenizer_info: dict
    options: SampleOptions
    batch_chars: int


def partial_path(out_path) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(f".{out_path.name}.partial")


# Attributes recorded only off the value every file written before them had (what a file without one reads as),
# so that files made the old way stay byte for byte as they were.
LEGACY_ATTRIBUTES = {"masking_unit": "token", "packing": "document"}


def shard_attributes(options: SampleOptions, info: dict) -> dict:
    """What every sample file records of itself as HDF5 attributes (the pretraining loader reads them back).
    ``masking_unit`` and ``packing`` only when off ``LEGACY_ATTRIBUTES``."""
    recorded_if_new = {name: getattr(options, name) for name, legacy in LEGACY_ATTRIBUTES.items()
                       if getattr(options, name) != legacy}
    return {"masking": options.masking, "max_seq_length": options.max_seq_length,
            **{name: info[name] for name in ("vocab_size", "pad_id", "cls_id", "sep_id", "mask_id")},
            "masked_lm_prob": options.masked_lm_prob, "max_predictions_per_seq": options.max_predictions_per_seq,
            **recorded_if_new}


class RowSpool:
    """Rows of several 2-D fields appended to raw temporary files, then copied into contiguous HDF5 datasets.

    The row count is known only at the end, and a resizable (chunked) HDF5 dataset rounds the file up to whole
    chunks; spooling first gives exact-size contiguous datasets (no padding on disk, and the pretraining loader
    can read them in one slice) with bounded memory.
    """

    def __init__(self, folder: Path, stem: str, fields: dict):
        self.fields = fields  # name -> (width, dtype)
        self.paths = {name: folder / f".{stem}.{name}.spool" for name in fields}
        self.files = {name: open(path, "wb") for name, path in self.paths.items()}
        self.rows = 0

    def append(self, **arrays) -> None:
        for name, array in arrays.items():
            width, dtype = self.fields[name]
            self.files[name].write(np.ascontiguousarray(array, dtype=dtype).tobytes())
        self.rows += len(next(iter(arrays.values())))

    def write_hdf5(self, h5file, block_rows: int = 16384) -> None:
        for handle in self.files.values():
            handle.close()
        for name, (width, dtype) in self.fields.items():
            dataset = h5file.create_dataset(name, shape=(self.rows, width), dtype=dtype)
            with open(self.paths[name], "rb") as f:
                for start in range(0, self.rows, block_rows):
                    n = min(block_rows, self.rows - start)
                    dataset[start:start + n] = np.fromfile(f, dtype=dtype, count=n * width).reshape(n, width)

    def remove(self) -> None:
        for name, handle in self.files.items():
            handle.close()
            self.paths[name].unlink(missing_ok=True)


@functools.lru_cache(maxsize=None)  # reused across the jobs of one worker
def _load_tokenizer(path: str):
    from tokenizers import Tokenizer

    return raw_ids_tokenizer(Tokenizer.from_file(path))


class _BlockWriter:
    """Masks full blocks of rows (static) or passes them through (dynamic) and appends them to the file."""

    def __init__(self, spool: RowSpool, job: ShardJob, candidates, continuation, dtype):
        self.spool, self.options, self.info = spool, job.options, job.tokenizer_info
        self.copies = job.options.dup_factor if job.split == "train" else 1
        self.rng = np.random.default_rng([job.options.seed, SPLIT_CODES[job.split], job.shard_index])
        self.candidates = candidates
        self.continuation = continuation  # ids of ## pieces for whole-word masking, None for token masking
        self.pending = np.zeros((0, job.options.max_seq_length), dtype=dtype)  # rows short of a full block
        self.tokens = 0

    def add(self, rows: np.ndarray) -> None:
        self.pending = np.concatenate([self.pending, rows])
        while len(self.pending) >= MASK_BLOCK_ROWS:
            self._write(self.pending[:MASK_BLOCK_ROWS])
            self.pending = self.pending[MASK_BLOCK_ROWS:]

    def finish(self) -> None:
        if len(self.pending):
            self._write(self.pending)
        self.pending = self.pending[:0]

    def _write(self, block: np.ndarray) -> None:
        info = self.info
        real = block != info["pad_id"]
        self.tokens += int(real.sum()) * (self.copies if self.options.masking == "static" else 1)
        if self.options.masking == "dynamic":
            self.spool.append(input_ids=block)
            return
        input_mask = real.astype(np.uint8)
        segment_ids = np.zeros_like(input_mask)
        for _ in range(self.copies):
            masked, positions, labels = mask_block(
                block, self.rng, masked_lm_prob=self.options.masked_lm_prob,
                max_predictions=self.options.max_predictions_per_seq, pad_id=info["pad_id"], cls_id=info["cls_id"],
                sep_id=info["sep_id"], mask_id=info["mask_id"], candidates=self.candidates,
                continuation=self.continuation)
            self.spool.append(input_ids=masked, input_mask=input_mask, segment_ids=segment_ids,
                                 masked_lm_positions=positions, masked_lm_ids=labels)


def write_shard(job: ShardJob) -> dict:
    """Tokenize, pack (and mask) one text shard into its HDF5 file; returns the manifest entry for it."""
    import h5py

    options, info = job.options, job.tokenizer_info
    tokenizer = _load_tokenizer(job.tokenizer_file)
    dtype = np.uint16 if info["vocab_size"] <= np.iinfo(np.uint16).max + 1 else np.int32
    length, predictions = options.max_seq_length, options.max_predictions_per_seq
    static = options.masking == "static"
    fields = {"input_ids": (length, dtype)}
    if static:
        fields.update(input_mask=(length, np.uint8), segment_ids=(length, np.uint8),
                      masked_lm_positions=(predictions, np.uint16), masked_lm_ids=(predictions, dtype))
    vocab = tokenizer.get_vocab(with_added_tokens=True) if static else None
    candidates = replacement_candidates(vocab, info["special_ids"]) if static else None
    continuation = continuation_ids(vocab) if static and options.masking_unit == "word" else None
    packer = SequencePacker(length, info["cls_id"], info["sep_id"], info["pad_id"], dtype, options.packing)
    out_path = Path(job.out_path)
    tmp = partial_path(out_path)
    text_tokens = unk_tokens = 0
    unk_id = info.get("unk_id")
    spool = RowSpool(out_path.parent, out_path.name, fields)
    try:
        writer = _BlockWriter(spool, job, candidates, continuation, dtype)
        for lines, starts in iter_line_batches(job.text_path, job.batch_chars):
            encodings = tokenizer.encode_batch_fast(lines, add_special_tokens=False)
            token_lists = [e.ids for e in encodings]
            del encodings
            text_tokens += sum(map(len, token_lists))
            if unk_id is not None:
                unk_tokens += sum(ids.count(unk_id) for ids in token_lists)
            writer.add(packer.add_batch(token_lists, starts))
        writer.add(packer.finish())
        writer.finish()
        with h5py.File(tmp, "w") as h5file:
            spool.write_hdf5(h5file)
            for key, value in shard_attributes(options, info).items():
                h5file.attrs[key] = value
            h5file.attrs["num_tokens"] = writer.tokens
            h5file.attrs["num_text_tokens"] = text_tokens
            h5file.attrs["num_unk_tokens"] = unk_tokens
    finally:
        spool.remove()
    os.replace(tmp, out_path)
    return existing_shard_entry(out_path)


def attributes_differing(out_path, expected: dict) -> list:
    """The names of ``expected``'s attributes that the finished file ``out_path`` records otherwise (an absent
    ``LEGACY_ATTRIBUTES`` one as its legacy value): such a file was made with other settings."""
    import h5py

    with h5py.File(out_path, "r") as h5file:
        recorded = {**LEGACY_ATTRIBUTES, **{name: h5file.attrs[name] for name in h5file.attrs}}
    return [name for name, value in {**LEGACY_ATTRIBUTES, **expected}.items()
            if name not in recorded or _as_python(recorded[name]) != value]


def _as_python(value):
    """An HDF5 attribute as the plain value it was written from (numpy scalars, bytes)."""
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if hasattr(value, "item") else value


def existing_shard_entry(out_path) -> dict:
    """The manifest entry of a finished sample shard (just written, or by an earlier run), read from the file."""
    import h5py

    out_path = Path(out_path)
    with h5py.File(out_path, "r") as h5file:
        samples = h5file["input_ids"].shape[0]
        tokens = int(h5file.attrs["num_tokens"])
        text_tokens = int(h5file.attrs["num_text_tokens"])
        unk_tokens = h5file.attrs.get("num_unk_tokens")  # absent in shards of older versions
    split = "train" if out_path.name.startswith("train") else "test"
    entry = {"file": out_path.name, "split": split, "samples": samples, "tokens": tokens, "text_tokens": text_tokens,
             "sha256": file_sha256(out_path)}
    if unk_tokens is not None:
        entry["unk_tokens"] = int(unk_tokens)
    return entry
