"""The benchmark's data: one dataset built by the pipeline's dataset stage from the first N files of a corpus, with
one tokenizer, read by every contender. Ours reads its HDF5 samples; the Hugging Face recipes read its training
text shards the way ``run_mlm.py`` does (tokenize every line, concatenate, cut into blocks); everyone is scored on
the same held-out samples with the same masks, drawn once from its held-out HDF5 files."""
import subprocess
import sys

import numpy as np
from pathlib import Path

import torch

from benchmarks.document_shapes import reshape_file

REPO_ROOT = Path(__file__).resolve().parents[2]
HELD_OUT_NAME = "held_out.pt"


def corpus_subset(corpus: Path, max_files: int, folder: Path, documents: str = "articles") -> Path:
    """The first ``max_files`` .txt files of ``corpus`` in ``folder`` (the dataset stage reads folders): links to
    them as they are (``documents`` "articles"), or copies cut into shorter documents, one paragraph or one sentence
    each (``benchmarks.document_shapes``), written once: a rerun finds them with the same stamps, hence the same
    dataset. Every contender reads this text: ours through the dataset stage, the HF recipes its text shards."""
    sources = sorted(corpus.glob("*.txt"))[:max_files]
    if not sources:
        sys.exit(f"error: no .txt files in {corpus}; give --corpus a folder of text files")
    folder.mkdir(parents=True, exist_ok=True)
    for source in sources:
        target = folder / source.name
        if target.exists():
            continue
        if documents == "articles":
            target.symlink_to(source.resolve())
        else:
            reshape_file(source, target, documents)
    return folder


def dataset_opts(work_dir: Path, corpus_folder: Path, tokenizer: str, seq_length: int, frac_test: float) -> list:
    """``--opts`` of the pipeline config that builds (and names) the shared dataset."""
    return ["SYSTEM.OUTPUT_ROOT", str(work_dir / "pipeline"), "SYSTEM.MAX_MEMORY_IN_GB", "6",
            "DATASET.CUSTOMIZED_DATASETS", f"[{corpus_folder}]", "DATASET.NUM_TRAIN_SHARDS", "8",
            "DATASET.NUM_TEST_SHARDS", "1", "DATASET.FRAC_TEST", str(frac_test),
            "DATASET.MAX_SEQ_LENGTH", str(seq_length), "TOKENIZER.NAME_OR_PATH", tokenizer,
            "PRETRAIN.ENABLED", "False", "FINETUNE.ENABLED", "False", "RESULT_COLLECTION.ENABLED", "False"]


def build_dataset(config: Path, opts: list):
    """Run the dataset stage through ``main.py`` (skipped when complete); returns the loaded config."""
    from orchestration.stages import load_config

    command = [sys.executable, str(REPO_ROOT / "main.py"), "--config", str(config), "--opts", *opts]
    if subprocess.run(command, cwd=REPO_ROOT).returncode:
        sys.exit("error: the dataset stage failed (its output is above); fix it and rerun the same command")
    return load_config(config, opts)


def dataset_overrides(overrides: tuple) -> list:
    """The DATASET.* key/value pairs of a contender's overrides: another packing or masking unit makes another
    dataset (its own ID), built from the same text."""
    pairs = list(zip(overrides[::2], overrides[1::2]))
    return [item for key, value in pairs if key.startswith("DATASET.") for item in (key, value)]


def padding_share(cfg) -> float:
    """The share of [PAD] positions in the training rows of ``cfg``'s dataset, as its manifest records it."""
    from pipeline import layout
    from pipeline.manifest import read_manifest

    return read_manifest(layout.dataset_dir(cfg))["padding"]["train"]["padding_share"]


def write_held_out(cfg, path: Path, max_samples: int) -> dict:
    """Draw the held-out samples and their masks once (the pipeline's own validation stream: fixed by the seed)
    and save them as tensors; every contender is scored on exactly these."""
    from pipeline import layout
    from pipeline.tokenizer_loading import load_tokenizer
    from pretraining.data.loader import VALIDATION_SALT, SampleStream
    from pretraining.data.shards import MaskingDefaults, Vocabulary, describe_dataset

    if path.exists():
        held_out = torch.load(path)
        if held_out["asked"] != max_samples:
            sys.exit(f"error: {path} was drawn for --held_out_samples {held_out['asked']}, not {max_samples}: the"
                     f" snapshots were scored on it; use another --work_dir to score on another count")
        return held_out
    tokenizer = load_tokenizer(str(layout.dataset_tokenizer_dir(cfg)))
    vocab = Vocabulary.from_tokenizer(tokenizer)
    defaults = MaskingDefaults(cfg.DATASET.MASKED_LM_PROB, cfg.DATASET.MAX_PREDICTIONS_PER_SEQ)
    _, test_shards = describe_dataset(layout.samples_dir(cfg), vocab, defaults, 512)
    stream = SampleStream(test_shards, vocab, 64, 0, 1, cfg.SYSTEM.SEED, shuffle=False, repeat=False,
                          max_samples=max_samples, salt=VALIDATION_SALT, prefetch_batches=0)
    batches = list(stream)
    held_out = {name: torch.cat([b[name] for b in batches]) for name in ("input_ids", "attention_mask", "labels")}
    held_out["attention_mask"] = held_out["attention_mask"].long()
    held_out["asked"] = max_samples
    tmp = path.with_suffix(".tmp")
    torch.save(held_out, tmp)
    tmp.replace(path)
    return held_out


def word_frequency_loss(cfg, held_out: dict) -> float:
    """The held-out loss of a predictor that knows only how often each token occurs in the training samples: the
    plateau a masked LM sits on before it uses the context (add-0.5 smoothing; special tokens never predicted)."""
    import h5py

    from pipeline import layout

    labels = held_out["labels"][held_out["labels"] != -100].numpy()
    size = max(int(labels.max()) + 1, 1)
    counts = np.zeros(size)
    for path in sorted(layout.samples_dir(cfg).glob("train_*.hdf5")):
        with h5py.File(path, "r") as f:
            ids = np.asarray(f["input_ids"][:]).ravel()
        counts += np.bincount(ids[ids < size], minlength=size)
    from pipeline.tokenizer_loading import load_tokenizer

    special = load_tokenizer(str(layout.dataset_tokenizer_dir(cfg))).all_special_ids
    counts[[i for i in special if i < size]] = 0  # [CLS], [SEP], [PAD] are never a masked token
    probabilities = (counts + 0.5) / (counts + 0.5).sum()
    return float(-np.log(probabilities[labels]).mean())
