"""The stream of micro-batches one rank trains on: one global order, the same for any number of processes.

**The data-order rule.** The training samples form one *global stream* that depends on the seed alone, never on
the number of processes: epoch ``e`` visits the files in an order shuffled by ``(seed, e)`` and each file's rows in
an order shuffled by ``(seed, e, file)``; dynamic masks are drawn per block of ``BLOCK_ROWS`` rows of that order,
from ``(seed, e, file, block)``. Optimizer step ``k`` trains on the stream's samples ``[k*B, (k+1)*B)`` (``B`` the
global batch); rank ``r`` of ``W`` takes the ``B/W`` consecutive samples that start at ``k*B + r*B/W``, as ``A``
micro-batches of ``M`` (``B = M*W*A``). Together with a step loss that is the mean over every predicted token of
the global batch (``pretraining.loop``), any ``(W, M, A)`` with the same ``B`` computes the same gradients, up to
the order of float sums; and a checkpoint resumes at sample ``k*B`` with any number of processes. (Dropout masks
are drawn per micro-batch, so with dropout on two such runs are statistically, not bitwise, alike.)

Every rank reads each file whole (one sequential read; the ranks of a node share the page cache) and keeps its
own rows, so that masks never depend on which rank reads a row. To resume, a rank skips files before the resume
position without reading them. Loading and masking run in a background thread, a few batches ahead.
"""
import contextlib
import queue
import threading

import h5py
import numpy as np
import torch

from dataset.masking import mask_block
from pipeline.errors import DataError
from pretraining.data.shards import check_token_ids
from pretraining.modeling import IGNORE_INDEX

BLOCK_ROWS = 2048  # rows masked together (one RNG stream per block): large enough for fast vectorised numpy
TRAIN_SALT, VALIDATION_SALT = 0, 1  # keep training and validation random streams apart for the same seed


def static_labels(input_ids: np.ndarray, positions: np.ndarray, ids: np.ndarray) -> tuple:
    """``(input_ids, labels)`` as int64 ``[N, L]`` from a static file's ``masked_lm_positions``/``masked_lm_ids``
    ([N, P], 0-padded: position 0 is [CLS] and is never predicted, so 0 marks padding). ``labels`` holds the
    original token at every predicted position and IGNORE_INDEX elsewhere; ``input_ids`` are already masked."""
    input_ids = input_ids.astype(np.int64)
    labels = np.full(input_ids.shape, IGNORE_INDEX, dtype=np.int64)
    rows, slots = np.nonzero(positions > 0)
    labels[rows, positions[rows, slots].astype(np.int64)] = ids[rows, slots]
    return input_ids, labels


def dynamic_mask(input_ids: np.ndarray, rng: np.random.Generator, *, masked_lm_prob: float,
                 max_predictions_per_seq: int, pad_id: int, cls_id: int, sep_id: int, mask_id: int,
                 replacement_ids: np.ndarray, continuation: np.ndarray = None) -> tuple:
    """BERT masking drawn now, by the very function the dataset stage uses for static files
    (``dataset.masking.mask_block``: the same selection and 80/10/10 rules in both modes), as ``static_labels``.
    ``continuation`` (ids of ## pieces) masks whole words; None masks tokens."""
    masked, positions, ids = mask_block(input_ids.astype(np.int64), rng, masked_lm_prob=masked_lm_prob,
                                        max_predictions=max_predictions_per_seq, pad_id=pad_id, cls_id=cls_id,
                                        sep_id=sep_id, mask_id=mask_id, candidates=replacement_ids,
                                        continuation=continuation)
    return static_labels(masked, positions, ids)


class SampleStream:
    """Iterates micro-batches ``{"input_ids", "attention_mask", "labels", "token_type_ids"}`` (torch tensors;
    ``token_type_ids`` is None unless a file has segment ids) plus ``num_predictions`` (int: labelled positions).

    ``repeat=True`` cycles through epochs forever (training; every batch is full); ``repeat=False`` reads one
    epoch in file order (validation; the last batch may be short). ``rank_share`` is how many consecutive samples
    of the global stream this rank takes in its turn (training: micro batch x accumulation, i.e. its part of a
    global batch; default: one micro batch). ``start_sample`` (resume) and ``max_samples`` (a cap) are positions
    in the global stream.
    """

    def __init__(self, shards, vocab, micro_batch_size: int, rank: int, world_size: int, seed: int, *,
                 rank_share: int = 0, shuffle: bool = True, repeat: bool = True, start_sample: int = 0,
                 max_samples: int = 0, salt: int = TRAIN_SALT, prefetch_batches: int = 8, pin_memory: bool = False):
        self.shards = list(shards)
        self.vocab = vocab
        self.micro_batch_size = micro_batch_size
        self.rank, self.world_size = rank, world_size
        self.rank_share = rank_share or micro_batch_size
        self.seed, self.salt = seed, salt
        self.shuffle, self.repeat = shuffle, repeat
        self.start_sample = start_sample
        self.max_samples = max_samples
        self.prefetch_batches = prefetch_batches
        self.pin_memory = pin_memory
        self.samples_per_epoch = sum(s.num_samples for s in self.shards)  # the global stream's epoch
        self.with_segments = any(s.has_segment_ids for s in self.shards)
        self._replacement_ids = vocab.replacement_ids()
        self._continuation = np.asarray(vocab.continuation, dtype=np.int64)
        if repeat and self.samples_per_epoch == 0:
            raise DataError("the training files hold no samples; make samples with the dataset stage first")

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
    def _read_file(self, shard) -> dict:
        names = ["input_ids"] + (["input_mask", "masked_lm_positions", "masked_lm_ids"] if shard.static else [])
        if shard.has_segment_ids:
            names.append("segment_ids")
        with h5py.File(shard.path, "r") as f:
            arrays = {name: np.asarray(f[name][:]) for name in names}
        for name in ("input_ids", "masked_lm_ids"):
            if name in arrays:
                check_token_ids(shard.path, name, arrays[name], self.vocab.size)
        return arrays

    def _block(self, shard, arrays: dict, rows: np.ndarray, keep: np.ndarray, rng_key: list) -> dict:
        """The ``keep`` rows of the block ``rows`` (file row indices in stream order), masked and labelled.
        Dynamic masks are drawn for the whole block, so a row's mask is the same whichever rank keeps it."""
        if shard.static:
            rows = rows[keep]
            input_ids, labels = static_labels(arrays["input_ids"][rows], arrays["masked_lm_positions"][rows],
                                              arrays["masked_lm_ids"][rows])
            attention_mask = arrays["input_mask"][rows].astype(bool)
        else:
            raw = arrays["input_ids"][rows]
            vocab = self.vocab
            input_ids, labels = dynamic_mask(
                raw, np.random.default_rng(rng_key), masked_lm_prob=shard.masked_lm_prob,
                max_predictions_per_seq=shard.max_predictions_per_seq, pad_id=vocab.pad_id, cls_id=vocab.cls_id,
                sep_id=vocab.sep_id, mask_id=vocab.mask_id, replacement_ids=self._replacement_ids,
                continuation=self._continuation if shard.masking_unit == "word" else None)
            rows, raw, input_ids, labels = rows[keep], raw[keep], input_ids[keep], labels[keep]
            attention_mask = raw != vocab.pad_id
        block = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if self.with_segments:
            block["token_type_ids"] = (arrays["segment_ids"][rows].astype(np.int64) if shard.has_segment_ids
                                       else np.zeros_like(input_ids))
        return block

    def _kept(self, positions: np.ndarray) -> np.ndarray:
        # of every world_size x rank_share consecutive samples, rank r takes the rank_share that start at r x rank_share
        keep = ((positions // self.rank_share) % self.world_size == self.rank) & (positions >= self.start_sample)
        return keep & (positions < self.max_samples) if self.max_samples else keep

    def _blocks(self):
        """This rank's samples, block by block in global-stream order, from ``start_sample`` on."""
        epoch = self.start_sample // self.samples_per_epoch if self.samples_per_epoch else 0
        file_start = epoch * self.samples_per_epoch  # global position of the next file's first row
        while True:
            for file_index in self.file_order(epoch):
                shard = self.shards[file_index]
                first, file_start = file_start, file_start + shard.num_samples
                if file_start <= self.start_sample:
                    continue  # skipped without reading: resuming past this file
                if self.max_samples and first >= self.max_samples:
                    return
                arrays = None
                order = self.row_order(epoch, file_index, shard.num_samples)
                for block_index, lo in enumerate(range(0, shard.num_samples, BLOCK_ROWS)):
                    rows = order[lo:lo + BLOCK_ROWS]
                    keep = self._kept(first + lo + np.arange(len(rows)))
                    if not keep.any():
                        continue
                    if arrays is None:
                        arrays = self._read_file(shard)
                    yield self._block(shard, arrays, rows, keep,
                                      [self.seed, self.salt, epoch, int(file_index), block_index])
            if not self.repeat:
                return
            epoch += 1

    def _numpy_batches(self):
        pending, pending_rows = [], 0
        for block in self._blocks():
            pending.append(block)
            pending_rows += len(block["input_ids"])
            while pending_rows >= self.micro_batch_size:
                merged = {k: np.concatenate([b[k] for b in pending]) for k in pending[0]}
                batch = {k: v[:self.micro_batch_size] for k, v in merged.items()}
                rest = {k: v[self.micro_batch_size:] for k, v in merged.items()}
                pending, pending_rows = ([rest] if len(rest["input_ids"]) else []), len(rest["input_ids"])
                yield batch
        if pending_rows and not self.repeat:
            yield {k: np.concatenate([b[k] for b in pending]) for k in pending[0]}

    def _to_torch(self, batch: dict) -> dict:
        out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
        if self.pin_memory:
            out = {k: v.pin_memory() for k, v in out.items()}
        out.setdefault("token_type_ids", None)
        # a plain int, counted here so the training loop never syncs for it
        out["num_predictions"] = int((batch["labels"] != IGNORE_INDEX).sum())
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
                        with contextlib.suppress(queue.Full):
                            items.put(item, timeout=0.1)
                            break
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
