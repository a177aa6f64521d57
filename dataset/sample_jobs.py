"""Text shards -> HDF5 sample shards across worker processes, one job per text shard. A job's output appears only
when complete (``sample_file``), so a rerun redoes exactly the shards that are missing.
"""
import logging
import re
import time
from pathlib import Path

from pipeline.errors import ConfigError, DataError

from dataset import memory
from dataset.masking import continuation_ids
from dataset.sample_file import SampleOptions, ShardJob, attributes_differing, existing_shard_entry, partial_path, \
    shard_attributes, write_shard
from dataset.text_shards import list_text_shards
from dataset.tokenizer_setup import read_tokenizer_info
from dataset.workers import run_jobs

log = logging.getLogger(__name__)

SUSPICIOUS_UNK_FRACTION = 0.05


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def plan_jobs(text_dir, out_dir, tokenizer_dir, options: SampleOptions) -> list:
    """One job per text shard (train then test), outputs named ``<split>_shard_NNNNN.hdf5``."""
    info = read_tokenizer_info(tokenizer_dir)
    if info is None:
        raise DataError(f"no prepared tokenizer in {tokenizer_dir}")
    if options.masking_unit == "word":
        check_word_pieces(Path(tokenizer_dir) / "tokenizer.json")
    text_dir, out_dir = Path(text_dir), Path(out_dir)
    if not text_dir.is_dir():
        raise DataError(f"text shard folder does not exist: {text_dir}")
    jobs = [ShardJob(text_path=str(text_path), out_path=str(out_dir / f"{split}_shard_{index:05d}.hdf5"), split=split,
                     shard_index=index, tokenizer_file=str(Path(tokenizer_dir) / "tokenizer.json"),
                     tokenizer_info=info, options=options, batch_chars=memory.TEXT_BATCH_CHARS)
            for split in ("train", "test")
            for index, text_path in enumerate(sorted(list_text_shards(text_dir, split), key=_natural_key))]
    if not any(job.split == "train" for job in jobs):
        raise DataError(f"no training text shards (*train*.txt) in {text_dir}: run the sharding step first")
    return jobs


def check_word_pieces(tokenizer_file: Path) -> None:
    """Whole-word masking finds words by WordPiece's ## pieces: a vocabulary without any is refused up front."""
    from tokenizers import Tokenizer

    if not len(continuation_ids(Tokenizer.from_file(str(tokenizer_file)).get_vocab(with_added_tokens=True))):
        raise ConfigError("DATASET.MASKING_UNIT (--masking_unit) word needs a WordPiece vocabulary with ## pieces, and"
                          f" {tokenizer_file} has none: use token")


def _finished_entry(job: ShardJob):
    """The entry of a shard an earlier run completed, or None when it must be (re)done: also when the file was made
    with other settings (an earlier command, or the version before a default changed), which would mix two kinds
    of rows in one dataset."""
    if not Path(job.out_path).is_file():
        return None
    try:
        differing = attributes_differing(job.out_path, shard_attributes(job.options, job.tokenizer_info))
        if not differing:
            return existing_shard_entry(job.out_path)
        log.warning("%s: made with other %s: writing it again", job.out_path, ", ".join(differing))
    except (OSError, KeyError):  # unreadable or from an older writer: redo it
        pass
    Path(job.out_path).unlink()
    return None


def warn_if_many_unknown(text_path, entry: dict) -> None:
    """More than ``SUSPICIOUS_UNK_FRACTION`` of a shard's tokens being [UNK] means the vocabulary does not fit the
    text (another script or language, binary data): the model would learn little from it, and nothing says so."""
    unknown, tokens = entry.get("unk_tokens", 0), entry["text_tokens"]
    if tokens and unknown > SUSPICIOUS_UNK_FRACTION * tokens:
        log.warning(f"{text_path}: {unknown:,} of {tokens:,} tokens ({100 * unknown / tokens:.1f}%) are [UNK] (in"
                    f" {entry['file']}): the tokenizer does not cover this text; check the corpus, or set"
                    f" TOKENIZER.TRAIN True to learn a vocabulary from it")


def generate_samples(text_dir, out_dir, tokenizer_dir, options: SampleOptions, n_processes: int,
                     max_memory_gb: float, memory_key: str = "SYSTEM.MAX_MEMORY_IN_GB", progress: bool = True) -> list:
    """Write every missing sample shard; returns the manifest entries of all shards (sorted by file name)."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for pattern in (".*.partial", ".*.spool"):  # half-written files of an interrupted run
        for stale in out_dir.glob(pattern):
            stale.unlink()
    jobs = plan_jobs(text_dir, out_dir, tokenizer_dir, options)
    tokenizer_size = (Path(tokenizer_dir) / "tokenizer.json").stat().st_size
    memory.check_memory_cap(max_memory_gb, memory_key, tokenizer_file_size=tokenizer_size)
    finished = [_finished_entry(job) for job in jobs]
    entries = [entry for entry in finished if entry]
    todo = [job for job, entry in zip(jobs, finished) if not entry]
    if todo:
        workers = memory.plan_workers(max_memory_gb, n_processes, len(todo), memory_key, tokenizer_size)
        log.info(f"samples: {len(todo)} shard(s) to write ({len(entries)} already done), {workers} worker(s), "
                 f"{options.masking} masking")
        started, text_tokens = time.time(), 0
        with tqdm(total=len(jobs), initial=len(entries), desc="tokenizing shards", unit=" shards",
                  disable=not progress, mininterval=1.0) as bar:
            for job, entry in run_jobs(write_shard, todo, workers, lambda j: Path(j.text_path).name):
                entries.append(entry)
                warn_if_many_unknown(job.text_path, entry)
                text_tokens += entry["text_tokens"]
                bar.update(1)
                bar.set_postfix_str(f"{text_tokens / max(time.time() - started, 1e-9) / 1e3:.0f}k tokens/s")
    for job in jobs:
        partial_path(job.out_path).unlink(missing_ok=True)
    entries = sorted(entries, key=lambda e: e["file"])
    log.info(padding_line(padding_by_split(entries, options.max_seq_length), options.packing))
    return entries


def padding_by_split(entries: list, max_seq_length: int) -> dict:
    """Per split: rows, real (non-[PAD]) tokens per row and the share of [PAD] positions, from the shards' entries
    (``tokens`` counts the non-[PAD] positions of every stored row, masked copies included). The padding is compute
    that pretraining spends on nothing: short documents under ``document`` packing leave much of it."""
    padding = {}
    for split in ("train", "test"):
        rows = sum(e["samples"] for e in entries if e["split"] == split)
        tokens = sum(e["tokens"] for e in entries if e["split"] == split)
        if rows:
            padding[split] = {"rows": rows, "real_tokens_per_row": round(tokens / rows, 2),
                              "padding_share": round(1 - tokens / (rows * max_seq_length), 4)}
    return padding


def padding_line(padding: dict, packing: str) -> str:
    """The one line the dataset stage and generate_samples.py print about the waste in the rows."""
    parts = [f"{split} {stats['rows']:,} rows, {stats['real_tokens_per_row']:.1f} real tokens per row, "
             f"{stats['padding_share']:.1%} padding" for split, stats in padding.items()]
    return f"samples ({packing} packing): " + "; ".join(parts)


def manifest_outputs(info: dict, options: SampleOptions, entries: list) -> dict:
    """The facts a dataset manifest records besides its settings (see docs/interfaces.md)."""
    return {
        **shard_attributes(options, info),  # what every sample file records of itself
        "dup_factor": options.dup_factor if options.masking == "static" else 1,
        "unk_id": info["unk_id"],
        "train_samples": sum(e["samples"] for e in entries if e["split"] == "train"),
        "test_samples": sum(e["samples"] for e in entries if e["split"] == "test"),
        "train_tokens": sum(e["tokens"] for e in entries if e["split"] == "train"),
        "packing": options.packing,
        "padding": padding_by_split(entries, options.max_seq_length),
        "shards": entries,
    }
