"""Find the HDF5 sample files of a dataset and describe each one, checked against the tokenizer.

Formats are those of ``docs/interfaces.md``: a file is *static* when it holds ``masked_lm_positions`` and
*dynamic* otherwise. Files written by our dataset stage carry their parameters as attributes; legacy
24h-BERT/ExtremeBERT files (int32, no attributes) fall back to the tokenizer and the command-line flags.
Everything here reads only shapes, attributes and a few rows, so checking a large dataset takes seconds.
"""
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from dataset.masking import MASKING_UNITS, continuation_ids, replacement_candidates
from dataset.packing import PACKINGS
from pipeline.errors import DataError

TRAIN_NAME = re.compile(r"train|training", re.IGNORECASE)
TEST_NAME = re.compile(r"test|valid", re.IGNORECASE)
HDF5_SUFFIXES = (".hdf5", ".h5", ".hdf")
ROWS_CHECKED_UPFRONT = 1024  # rows per file whose token ids are range-checked before training (all rows at load)


@dataclass(frozen=True)
class Vocabulary:
    """What the loader needs to know about the tokenizer: its size and the ids masking treats specially."""

    size: int  # len(tokenizer): ids in [0, size) can occur
    pad_id: int
    cls_id: int
    sep_id: int
    mask_id: int
    replacements: tuple  # ids a "random token" replacement draws from: real, non-special, non-[unusedN] tokens
    continuation: tuple = ()  # ids of WordPiece ## pieces: how whole-word masking finds words

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "Vocabulary":
        vocab = tokenizer.get_vocab()
        replacements = replacement_candidates(vocab, tokenizer.all_special_ids)
        return cls(size=len(tokenizer), pad_id=tokenizer.pad_token_id, cls_id=tokenizer.cls_token_id,
                   sep_id=tokenizer.sep_token_id, mask_id=tokenizer.mask_token_id,
                   replacements=tuple(int(i) for i in replacements),
                   continuation=tuple(int(i) for i in continuation_ids(vocab)))

    def replacement_ids(self) -> np.ndarray:
        return np.asarray(self.replacements, dtype=np.int64)


@dataclass(frozen=True)
class MaskingDefaults:
    """Dynamic-masking parameters used when a file does not record its own (the CLI flags)."""

    masked_lm_prob: float
    max_predictions_per_seq: int


@dataclass(frozen=True)
class Shard:
    """One HDF5 file and what it takes, besides the vocabulary, to turn its rows into training batches."""

    path: Path
    num_samples: int
    seq_length: int
    static: bool
    masked_lm_prob: float
    max_predictions_per_seq: int
    has_segment_ids: bool = False
    masking_unit: str = "token"  # dynamic files: token | word (the file's attribute; absent = token)


def _attr(attrs, name, fallback):
    value = attrs.get(name)
    if value is None:
        return fallback
    return value.decode() if isinstance(value, bytes) else value.item() if hasattr(value, "item") else value


def check_token_ids(path, name: str, ids: np.ndarray, vocab_size: int) -> None:
    """DataError when the ``name`` rows ``ids`` hold an id the tokenizer does not have."""
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise DataError(f"{path}: {name} holds id {int(ids.max())} but the tokenizer has {vocab_size} tokens: the data"
                        f" was made with a different vocabulary; pass the tokenizer it was made with (--tokenizer_name)"
                        f" or regenerate the samples")


def describe_shard(path: Path, vocab: Vocabulary, defaults: MaskingDefaults) -> Shard:
    """Open ``path`` and describe it; DataError if it is not a sample file made with this vocabulary."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 file ({e}); regenerate it with the dataset stage") from e
    with f:
        if "input_ids" not in f or len(f["input_ids"].shape) != 2:
            raise DataError(f"{path}: no 2-D 'input_ids' dataset; not a pretraining sample file")
        attrs = f.attrs
        recorded_vocab = _attr(attrs, "vocab_size", None)
        if recorded_vocab is not None and int(recorded_vocab) != vocab.size:
            raise DataError(f"{path}: made with a vocabulary of {int(recorded_vocab)} tokens but the tokenizer has"
                            f" {vocab.size}; pass the tokenizer the data was made with (--tokenizer_name) or"
                            f" regenerate the samples")
        for name, ours in (("pad_id", vocab.pad_id), ("cls_id", vocab.cls_id), ("sep_id", vocab.sep_id),
                           ("mask_id", vocab.mask_id)):
            recorded = _attr(attrs, name, None)
            if recorded is not None and int(recorded) != ours:
                raise DataError(f"{path}: {name} is {int(recorded)} in the data but {ours} in the tokenizer: the data"
                                f" was made with a different tokenizer; pass that one (--tokenizer_name)")
        for name in ("input_ids", "masked_lm_ids"):
            if name in f:
                check_token_ids(path, name, np.asarray(f[name][:ROWS_CHECKED_UPFRONT]), vocab.size)
        static = "masked_lm_positions" in f
        if static and not ("masked_lm_ids" in f and "input_mask" in f):
            raise DataError(f"{path}: a static file needs masked_lm_ids and input_mask next to masked_lm_positions")
        num_samples, seq_length = f["input_ids"].shape
        unit = str(_attr(attrs, "masking_unit", "token"))
        if unit not in MASKING_UNITS:
            raise DataError(f"{path}: masking_unit is {unit!r}, expected one of {', '.join(MASKING_UNITS)}; regenerate"
                            f" the samples with this version")
        packing = str(_attr(attrs, "packing", "document"))
        if packing not in PACKINGS:  # e.g. rows that need an attention mask this version does not build
            raise DataError(f"{path}: packing is {packing!r}, expected one of {', '.join(PACKINGS)}; regenerate the"
                            f" samples with this version (DATASET.PACKING)")
        if unit == "word" and not static and not vocab.continuation:
            raise DataError(f"{path}: made for whole-word masking, but the tokenizer has no WordPiece ## pieces to find"
                            f" words by; pass the tokenizer the data was made with (--tokenizer_name)")
        return Shard(path=Path(path), num_samples=int(num_samples), seq_length=int(seq_length), static=static,
                     masked_lm_prob=float(_attr(attrs, "masked_lm_prob", defaults.masked_lm_prob)),
                     max_predictions_per_seq=int(_attr(attrs, "max_predictions_per_seq",
                                                       defaults.max_predictions_per_seq)),
                     has_segment_ids=static and "segment_ids" in f, masking_unit=unit)


def list_sample_files(dataset_path) -> tuple:
    """(train files, test files) under ``dataset_path`` (sorted by name), split by file name as the formats say."""
    root = Path(dataset_path)
    if not str(dataset_path).strip():
        raise DataError("the dataset path is empty: give --dataset_path (the dataset stage's samples/ folder)")
    if not root.is_dir():
        raise DataError(f"dataset path does not exist or is not a folder: {root} (run the dataset stage first, or give"
                        f" --dataset_path the folder holding train_*.hdf5 files)")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in HDF5_SUFFIXES)
    train = [p for p in files if TRAIN_NAME.search(p.name)]
    test = [p for p in files if TEST_NAME.search(p.name) and not TRAIN_NAME.search(p.name)]
    if not train:
        raise DataError(f"no training files in {root}: expected HDF5 files whose name contains 'train' (e.g."
                        f" train_shard_00000.hdf5); run the dataset stage first")
    return train, test


def describe_dataset(dataset_path, vocab: Vocabulary, defaults: MaskingDefaults, max_seq_length_limit: int) -> tuple:
    """(train shards, test shards), every file checked: same sequence length, ids within the vocabulary,
    sequence length within the model's position embeddings. Raises DataError naming the first bad file."""
    train_files, test_files = list_sample_files(dataset_path)
    train = [describe_shard(p, vocab, defaults) for p in train_files]
    test = [describe_shard(p, vocab, defaults) for p in test_files]
    lengths = {s.seq_length for s in train + test}
    if len(lengths) > 1:
        raise DataError(f"{dataset_path}: the sample files have different sequence lengths {sorted(lengths)}; all"
                        f" files of one dataset must share one max_seq_length")
    seq_length = lengths.pop()
    if seq_length > max_seq_length_limit:
        raise DataError(f"{dataset_path}: samples are {seq_length} tokens long but the model has only"
                        f" {max_seq_length_limit} position embeddings; raise --max_position_embeddings")
    if sum(s.num_samples for s in train) == 0:
        raise DataError(f"{dataset_path}: the training files hold no samples; regenerate the dataset")
    return train, test
