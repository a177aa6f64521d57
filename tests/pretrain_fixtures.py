"""Tiny tokenizers and HDF5 sample files for the pretraining tests, in the formats of docs/interfaces.md.

The "corpus" draws words from a Zipf distribution (word k has weight 1/(k+1)), so a tiny model learns it within a
few dozen steps (the loss falls from ln(46) = 3.8 towards the distribution's entropy, about 3.1): a falling loss is
a real signal.
"""
import os
from pathlib import Path

import h5py
import numpy as np


SPECIALS = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNUSED, UNK, CLS, SEP, MASK = range(6)
NUM_WORDS = 40
FIRST_WORD = len(SPECIALS)


def write_tokenizer(folder, num_words: int = NUM_WORDS) -> Path:
    """A WordPiece tokenizer folder with ``6 + num_words`` tokens (AutoTokenizer loads it)."""
    from transformers import BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(SPECIALS + [f"w{i}" for i in range(num_words)]) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(vocab), do_lower_case=True)
    tokenizer.save_pretrained(str(folder))
    return folder


def zipf_rows(num_samples: int, seq_length: int, seed: int, num_words: int = NUM_WORDS) -> np.ndarray:
    """``[CLS] words... [SEP] [PAD]...`` with Zipf-distributed words and a random length per row."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, num_words + 1)
    rows = np.full((num_samples, seq_length), PAD, dtype=np.int64)
    for i in range(num_samples):
        length = int(rng.integers(seq_length // 2, seq_length - 1))
        rows[i, 0] = CLS
        rows[i, 1:length + 1] = FIRST_WORD + rng.choice(num_words, size=length, p=weights / weights.sum())
        rows[i, length + 1] = SEP
    return rows


def packed_rows(num_samples: int, seq_length: int, seed: int) -> np.ndarray:
    """``[CLS] ... [SEP]`` rows filled across documents (DATASET.PACKING full_sentences): short documents of
    Zipf-distributed words, a [SEP] between two, no padding."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, NUM_WORDS + 1)
    body = seq_length - 2
    stream = []
    while len(stream) < num_samples * body:
        stream += list(FIRST_WORD + rng.choice(NUM_WORDS, size=int(rng.integers(2, body)), p=weights / weights.sum()))
        stream.append(SEP)
    rows = np.full((num_samples, seq_length), SEP, dtype=np.int64)
    rows[:, 0] = CLS
    rows[:, 1:-1] = np.array(stream[:num_samples * body]).reshape(num_samples, body)
    return rows


def _attrs(f, masking: str, seq_length: int, vocab_size: int, **extra):
    f.attrs.update(dict(masking=masking, max_seq_length=seq_length, vocab_size=vocab_size, pad_id=PAD, cls_id=CLS,
                        sep_id=SEP, mask_id=MASK, masked_lm_prob=0.15, max_predictions_per_seq=8, **extra))


def write_dynamic(path, num_samples: int = 64, seq_length: int = 32, seed: int = 0,
                  vocab_size: int = len(SPECIALS) + NUM_WORDS) -> Path:
    """A dynamic file (``vocab_size`` is the attribute recorded, to fake data made with another tokenizer)."""
    rows = zipf_rows(num_samples, seq_length, seed)
    with h5py.File(path, "w") as f:
        f.create_dataset("input_ids", data=rows.astype(np.uint16))
        _attrs(f, "dynamic", seq_length, vocab_size)
    return Path(path)


def write_packed(path, num_samples: int = 64, seq_length: int = 32, seed: int = 0) -> Path:
    """A dynamic file of packed rows, with the attribute the dataset stage records for them."""
    with h5py.File(path, "w") as f:
        f.create_dataset("input_ids", data=packed_rows(num_samples, seq_length, seed).astype(np.uint16))
        _attrs(f, "dynamic", seq_length, len(SPECIALS) + NUM_WORDS, packing="full_sentences")
    return Path(path)


def static_arrays(num_samples: int, seq_length: int, seed: int, predictions: int = 8):
    rows = zipf_rows(num_samples, seq_length, seed)
    rng = np.random.default_rng(seed + 1)
    positions = np.zeros((num_samples, predictions), dtype=np.int64)
    ids = np.zeros((num_samples, predictions), dtype=np.int64)
    masked = rows.copy()
    for i in range(num_samples):
        words = np.flatnonzero(rows[i] >= FIRST_WORD)
        chosen = np.sort(rng.choice(words, size=min(predictions, len(words) // 5 + 1), replace=False))
        positions[i, :len(chosen)] = chosen
        ids[i, :len(chosen)] = rows[i, chosen]
        masked[i, chosen] = MASK
    return rows, masked, positions, ids


def write_static(path, num_samples: int = 64, seq_length: int = 32, seed: int = 0, legacy: bool = False) -> Path:
    """A static file; ``legacy=True`` writes the 24h-BERT layout: int32, no attributes, next_sentence_labels."""
    rows, masked, positions, ids = static_arrays(num_samples, seq_length, seed)
    small, dtype = (np.uint8, np.uint16) if not legacy else (np.int32, np.int32)
    with h5py.File(path, "w") as f:
        f.create_dataset("input_ids", data=masked.astype(dtype))
        f.create_dataset("input_mask", data=(rows != PAD).astype(small))
        f.create_dataset("segment_ids", data=np.zeros_like(rows).astype(small))
        f.create_dataset("masked_lm_positions", data=positions.astype(np.uint16 if not legacy else np.int32))
        f.create_dataset("masked_lm_ids", data=ids.astype(dtype))
        if legacy:
            f.create_dataset("next_sentence_labels", data=np.zeros(num_samples, dtype=np.int32))
        else:
            _attrs(f, "static", seq_length, len(SPECIALS) + NUM_WORDS)
    return Path(path)


def make_dataset(folder, kind: str = "dynamic", train_files: int = 2, test_files: int = 1, samples: int = 64,
                 seq_length: int = 32) -> Path:
    """``folder`` with train_shard_*.hdf5 and test_shard_*.hdf5 of ``kind`` dynamic | static | legacy | packed
    (dynamic, rows packed across documents)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count, base in (("train", train_files, 0), ("test", test_files, 1000)):
        for i in range(count):
            path = folder / f"{split}_shard_{i:05d}.hdf5"
            if kind == "dynamic":
                write_dynamic(path, samples, seq_length, seed=base + i)
            elif kind == "packed":
                write_packed(path, samples, seq_length, seed=base + i)
            else:
                write_static(path, samples, seq_length, seed=base + i, legacy=kind == "legacy")
    return folder


def pretrain_argv(dataset, output_dir, tokenizer, **overrides) -> list:
    """Flags of a tiny, fast run (a 2-layer, 32-wide model; 8-sample batches)."""
    flags = dict(dataset_path=dataset, output_dir=output_dir, tokenizer_name=tokenizer, preset="bert-tiny",
                 hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 max_position_embeddings=64, lr=3e-3, train_batch_size=8, train_micro_batch_size_per_gpu=4,
                 warmup_proportion=0.1, curve="linear", max_steps=20, total_training_time=1.0, print_steps=5,
                 validation_every_steps=10, checkpoint_every_steps=10, seed=7, precision="fp32",
                 hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    flags.update(overrides)
    argv = []
    for key, value in flags.items():
        if value is True:
            argv.append(f"--{key}")
        elif value is not False and value is not None:
            argv += [f"--{key}", str(value)]
    return argv


def checkpoint_contents(output_dir, step: int) -> dict:
    """DeepSpeed's model-states file of checkpoint ``step`` (weights under "module", our "train_state")."""
    import torch

    path = Path(output_dir) / "checkpoints" / f"step{step:08d}" / "mp_rank_00_model_states.pt"
    return torch.load(path, map_location="cpu", weights_only=False)


REPO_ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTED_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_SIZE")


def child_env(**extra) -> dict:
    """The environment of a training subprocess: this process's, minus any torch.distributed variables (the
    in-process tests set them), offline, one OpenMP thread per process (they share the CPU cores)."""
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV}
    env.update(HF_HUB_OFFLINE="1", WANDB_MODE="disabled", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env
