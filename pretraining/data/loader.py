"""The stream of micro-batches one rank trains on: deterministic, disjoint across ranks, and resumable.

Order: epoch ``e`` visits every file, in an order shuffled by ``(seed, e)``. Of a file with ``n`` rows, rank ``r``
of ``w`` reads the contiguous rows ``[r*n//w, (r+1)*n//w)`` (one sequential HDF5 read; the ranks' slices never
overlap) in an order shuffled by ``(seed, e, file)``. Dynamic masks are drawn per block of rows from
``(seed, e, file, rank, block)``. Every rank therefore reads the same number of samples per epoch, and the whole
stream is a pure function of the seed: to resume, a rank only needs how many samples it consumed, and skips to
there without reading the files in between.

Loading and masking run in a background thread, a few batches ahead of the training loop.
"""
import queue
import threading

import h5py
import numpy as np
import torch

from pipeline.errors import DataError
from pretraining.data.masking import IGNORE_INDEX, dynamic_mask, static_labels

BLOCK_ROWS = 2048  # rows masked together (one RNG stream per block): large enough for fast vectorised numpy
TRAIN_SALT, VALIDATION_SALT = 0, 1  # keep training and validation random streams apart for the same seed


def rank_rows(num_samples: int, rank: int, world_size: int) -> tuple:
    """The half-open row range of a file that ``rank`` reads (every rank gets the same count; the at most
    ``world_size - 1`` leftover rows of a file are not read)."""
    per_rank = num_samples // world_size
    return rank * per_rank, (rank + 1) * per_rank


class SampleStream:
    """Iterates micro-batches ``{"input_ids", "attention_mask", "labels", "token_type_ids"}`` (torch tensors;
    ``token_type_ids`` is None unless a file has segment ids) plus ``num_predictions`` (int: labelled positions).

    ``repeat=True`` cycles through epochs forever (training; every batch is full); ``repeat=False`` reads one
    epoch in file order (validation; the last batch may be short). ``start_sample`` resumes a training stream.
    """

    def __init__(self, shards, vocab, micro_batch_size: int, rank: int, world_size: int, seed: int, *,
                 shuffle: bool = True, repeat: bool = True, start_sample: int = 0, max_samples: int = 0,
                 salt: int = TRAIN_SALT, prefetch_batches: int = 8, pin_memory: bool = False):
        self.shards = list(shards)
        self.vocab = vocab
        self.micro_batch_size = micro_batch_size
        self.rank, self.world_size = rank, world_size
        self.seed, self.salt = seed, salt
        self.shuffle, self.repeat = shuffle, repeat
        self.start_sample = start_sample
        self.max_samples = max_samples
        self.prefetch_batches = prefetch_batches
        self.pin_memory = pin_memory
        self.samples_per_epoch = sum(rank_rows(s.num_samples, rank, world_size)[1] -
                                     rank_rows(s.num_samples, rank, world_size)[0] for s in self.shards)
        self.with_segments = any(s.has_segment_ids for s in self.shards)
        self._replacement_ids = vocab.replacement_ids()
        if repeat and self.samples_per_epoch == 0:
            raise DataError(f"the training files hold fewer samples per file than there are processes ({world_size});"
                            f" make more samples or use fewer GPUs")

    # -- order ------------------------------------------------------------------------------------------------
    def file_order(self, epoch: int) -> list:
        if not self.shuffle:
            return list(range(len(self.shards)))
        return [int(i) for i in np.random.default_rng([self.seed, self.salt, epoch]).permutation(len(self.shards))]

    def row_order(self, epoch: int, file_index: int, count: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(count)
        return np.random.default_rng([self.seed, self.salt, epoch, file_index, 1]).permutation(count)

    # -- reading ----------------------------------------------------------------------------------------------
    def _read_slice(self, shard, lo: int, hi: int) -> dict:
        names = ["input_ids"] + (["input_mask", "masked_lm_positions", "masked_lm_ids"] if shard.static else [])
        if shard.has_segment_ids:
            names.append("segment_ids")
        with h5py.File(shard.path, "r") as f:
            arrays = {name: np.asarray(f[name][lo:hi]) for name in names}
        for name in ("input_ids", "masked_lm_ids"):
            if name in arrays and arrays[name].size and arrays[name].max() >= self.vocab.size:
                raise DataError(f"{shard.path}: {name} holds id {int(arrays[name].max())} >= the tokenizer's"
                                f" {self.vocab.size} tokens: the data was made with a different vocabulary")
        return arrays

    def _block(self, shard, arrays: dict, rows: np.ndarray, rng_key: list) -> dict:
        if shard.static:
            input_ids, labels = static_labels(arrays["input_ids"][rows], arrays["masked_lm_positions"][rows],
                                              arrays["masked_lm_ids"][rows])
            attention_mask = arrays["input_mask"][rows].astype(bool)
        else:
            raw = arrays["input_ids"][rows]
            input_ids, labels = dynamic_mask(
                raw, np.random.default_rng(rng_key), masked_lm_prob=shard.masked_lm_prob,
                max_predictions_per_seq=shard.max_predictions_per_seq, pad_id=shard.pad_id, cls_id=shard.cls_id,
                sep_id=shard.sep_id, mask_id=shard.mask_id, replacement_ids=self._replacement_ids)
            attention_mask = raw != shard.pad_id
        block = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if self.with_segments:
            block["token_type_ids"] = (arrays["segment_ids"][rows].astype(np.int64) if shard.has_segment_ids
                                       else np.zeros_like(input_ids))
        return block

    def _blocks(self):
        """Blocks of samples in stream order, starting at ``start_sample``."""
        epoch, offset = divmod(self.start_sample, self.samples_per_epoch) if self.samples_per_epoch else (0, 0)
        while True:
            for file_index in self.file_order(epoch):
                shard = self.shards[file_index]
                lo, hi = rank_rows(shard.num_samples, self.rank, self.world_size)
                if offset >= hi - lo:
                    offset -= hi - lo  # skipped without reading: resuming past this file
                    continue
                arrays = self._read_slice(shard, lo, hi)
                order = self.row_order(epoch, file_index, hi - lo)
                first_block = offset // BLOCK_ROWS
                for block_index in range(first_block, -(-(hi - lo) // BLOCK_ROWS)):
                    rows = order[block_index * BLOCK_ROWS:(block_index + 1) * BLOCK_ROWS]
                    block = self._block(shard, arrays, rows,
                                        [self.seed, self.salt, epoch, int(file_index), self.rank, block_index])
                    skip = offset - block_index * BLOCK_ROWS if block_index == first_block else 0
                    yield {k: v[skip:] for k, v in block.items()}
                offset = 0
            if not self.repeat:
                return
            epoch += 1

    def _numpy_batches(self):
        pending, pending_rows, emitted = [], 0, 0
        limit = self.max_samples or None
        for block in self._blocks():
            pending.append(block)
            pending_rows += len(block["input_ids"])
            while pending_rows >= self.micro_batch_size:
                merged = {k: np.concatenate([b[k] for b in pending]) for k in pending[0]}
                batch = {k: v[:self.micro_batch_size] for k, v in merged.items()}
                rest = {k: v[self.micro_batch_size:] for k, v in merged.items()}
                pending, pending_rows = ([rest] if len(rest["input_ids"]) else []), len(rest["input_ids"])
                if limit is not None and emitted + self.micro_batch_size >= limit:
                    yield {k: v[:limit - emitted] for k, v in batch.items()}
                    return
                emitted += self.micro_batch_size
                yield batch
        if pending_rows and not self.repeat:
            merged = {k: np.concatenate([b[k] for b in pending]) for k in pending[0]}
            if limit is not None:
                merged = {k: v[:limit - emitted] for k, v in merged.items()}
            yield merged

    def _to_torch(self, batch: dict) -> dict:
        out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
        out.setdefault("token_type_ids", None)
        num_predictions = int((batch["labels"] != IGNORE_INDEX).sum())
        if self.pin_memory:
            out = {k: (v.pin_memory() if v is not None else None) for k, v in out.items()}
        out["num_predictions"] = num_predictions  # a plain int, counted here so the training loop never syncs for it
        return out

    # -- iteration with prefetch --------------------------------------------------------------------------------
    def __iter__(self):
        if self.prefetch_batches <= 0:
            for batch in self._numpy_batches():
                yield self._to_torch(batch)
            return
        items: queue.Queue = queue.Queue(maxsize=self.prefetch_batches)
        stop = threading.Event()
        done = object()

        def produce():
            try:
                for batch in self._numpy_batches():
                    item = self._to_torch(batch)
                    while not stop.is_set():
                        try:
                            items.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                items.put(done)
            except BaseException as e:  # handed to the consumer, which re-raises it in the training thread
                items.put(e)

        worker = threading.Thread(target=produce, name="sample-prefetch", daemon=True)
        worker.start()
        try:
            while True:
                item = items.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
