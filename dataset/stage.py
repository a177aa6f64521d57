"""The dataset stage: raw corpora -> text shards -> tokenizer -> HDF5 samples -> manifest, under a RAM cap.

Everything goes under ``layout.dataset_dir(cfg)``; see docs/interfaces.md for the formats. Each step resumes:
sharding is skipped when its record matches, the tokenizer when its folder matches, and only missing sample shards
are written. Module top level stays light (the runner imports it for status and validation).
"""
import logging
import shutil
from dataclasses import fields
from pathlib import Path

from pipeline import layout
from pipeline.disk import folder_bytes
from pipeline.errors import ConfigError, DataError
from pipeline.log_setup import progress_bars
from pipeline.manifest import (as_stored, changed_files, file_records, manifest_status, read_json, read_manifest,
                               write_json_atomic, write_manifest)
from pipeline.run_ids import corpus_fingerprint, dataset_settings, local_inputs_fingerprint
from pipeline.tokenizer_loading import tokenizer_source

from dataset import hub_check, memory
from dataset.corpus_readers import list_corpus_files, sources_from_lists
from dataset.hub_entries import HubEntry

log = logging.getLogger(__name__)

MEMORY_KEY = "SYSTEM.MAX_MEMORY_IN_GB"
SETTINGS_FILE = "settings.json"
OUTPUT_FOLDERS = ("text_shards", "tokenizer", "samples")  # what the manifest's "files" records


def _from_config(cls, section, **given):
    """``cls`` with each field not ``given`` read from the key of the same name, in capitals, of config ``section``."""
    return cls(**given, **{f.name: section[f.name.upper()] for f in fields(cls) if f.name not in given})


def sharding_options(cfg):
    from dataset.text_shards import ShardingOptions

    return _from_config(ShardingOptions, cfg.DATASET, seed=cfg.SYSTEM.SEED)


def sample_options(cfg):
    from dataset.sample_file import SampleOptions

    return _from_config(SampleOptions, cfg.DATASET, seed=cfg.SYSTEM.SEED)


def tokenizer_request(cfg):
    from dataset.tokenizer_setup import TokenizerRequest

    return _from_config(TokenizerRequest, cfg.TOKENIZER, do_lower_case=cfg.DATASET.DO_LOWER_CASE,
                        key="TOKENIZER.NAME_OR_PATH")


def _start_fresh_if_settings_changed(root: Path, settings: dict) -> None:
    """A fixed DATASET.ID reused with other settings: drop the old intermediate outputs instead of mixing them."""
    saved = read_json(root / SETTINGS_FILE)
    current = as_stored(settings)
    if saved is not None and saved != current:
        log.info(f"dataset settings changed since {root} was written: starting it over")
        (root / "manifest.json").unlink(missing_ok=True)
        for sub in OUTPUT_FOLDERS:
            shutil.rmtree(root / sub, ignore_errors=True)
    write_json_atomic(root / SETTINGS_FILE, current)


def stage_settings(cfg) -> dict:
    """The settings plus the stamps of every input file: a corpus or tokenizer changed in place makes the dataset
    stale even under a fixed DATASET.ID (a derived ID changes with them anyway)."""
    inputs = corpus_fingerprint(cfg.DATASET.CUSTOMIZED_DATASETS) + local_inputs_fingerprint(cfg)
    return {**dataset_settings(cfg), "INPUTS": inputs}


def prepare_dataset(cfg) -> dict:
    """Run the whole dataset stage for ``cfg``; returns the manifest it wrote."""
    from dataset.sample_jobs import generate_samples, manifest_outputs
    from dataset.text_shards import list_text_shards, shard_corpus
    from dataset.tokenizer_setup import prepare_tokenizer
    from dataset.workers import run_in_child

    sources = sources_from_lists(cfg.DATASET.CUSTOMIZED_DATASETS, cfg.DATASET.HUGGINGFACE_DATASETS)
    cap = cfg.SYSTEM.MAX_MEMORY_IN_GB
    memory.check_memory_cap(cap, MEMORY_KEY, uses_hub=bool(cfg.DATASET.HUGGINGFACE_DATASETS))
    root = layout.dataset_dir(cfg)
    settings = stage_settings(cfg)
    root.mkdir(parents=True, exist_ok=True)
    _start_fresh_if_settings_changed(root, settings)
    options = sample_options(cfg)
    with memory.PeakRssMonitor() as monitor:
        text_dir = layout.text_shards_dir(cfg)
        record = shard_corpus(sources, text_dir, sharding_options(cfg), progress=progress_bars())
        log.info(f"text shards: {len(record['shards'])} files, {record['articles']} articles, "
                 f"{record['chars'] / 1e6:.1f} M characters ({record['test_chars'] / max(record['chars'], 1):.1%} "
                 f"held out)")
        if cfg.TOKENIZER.TRAIN:
            train_chars = sum(size for name, size in record["shards"].items() if name.startswith("train"))
            train_chars = min(train_chars, cfg.TOKENIZER.TRAIN_MAX_CHARS or train_chars)
            memory.check_tokenizer_training(cap, MEMORY_KEY, train_chars)
        info = run_in_child(prepare_tokenizer, layout.dataset_tokenizer_dir(cfg), tokenizer_request(cfg),
                            list_text_shards(text_dir, "train"), list_text_shards(text_dir, "test"))
        log.info(f"tokenizer: {len(info['special_ids'])} special tokens, vocab_size {info['vocab_size']}")
        entries = generate_samples(text_dir, layout.samples_dir(cfg), layout.dataset_tokenizer_dir(cfg), options,
                                   cfg.SYSTEM.NUM_WORKERS, cap, MEMORY_KEY, progress=progress_bars())
    peak_gb = monitor.peak / memory.GB
    log.info(f"dataset ready: {root} (peak RAM of the stage {peak_gb:.2f} GB, cap {cap:g} GB)")
    if peak_gb > cap:
        log.warning(f"peak RAM {peak_gb:.2f} GB exceeded {MEMORY_KEY} = {cap:g}")
    # Size and sha256 of every output file (the sample shards' hashes are known from their entries); hidden names
    # are temporary or partial outputs.
    files = [path for sub in OUTPUT_FOLDERS for path in (root / sub).rglob("*")
             if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)]
    records = file_records(root, files, {f"samples/{entry['file']}": entry["sha256"] for entry in entries})
    return write_manifest(root, "dataset", settings, **manifest_outputs(info, options, entries),
                          tokenizer_dir=str(layout.dataset_tokenizer_dir(cfg)), articles=record["articles"],
                          peak_rss_gb=round(peak_gb, 3), files=records,
                          **({"domain_tokens": info["domain_tokens"]} if "domain_tokens" in info else {}))


def damaged_outputs(cfg, deep: bool = False) -> list:
    """Outputs of the dataset that are missing or changed since its manifest recorded them (sizes; sha256 too with
    ``deep``), widened to what has to be redone with them: a sample shard alone is written again; a text shard
    makes the sharding run again (it is deterministic; the samples stay, made from the text as recorded); a
    tokenizer file takes the tokenizer and every sample shard. Paths relative to the dataset folder."""
    root = layout.dataset_dir(cfg)
    manifest = read_manifest(root)
    if manifest is None:
        return []
    records = manifest.get("files")
    if records is None:  # a manifest from before sizes were recorded: the sample shards' hashes and the tokenizer
        records = {f"samples/{entry['file']}": {"sha256": entry.get("sha256")} for entry in manifest.get("shards", [])}
        records["tokenizer/tokenizer.json"] = {}
    changed = changed_files(root, records, deep)
    if any(name.startswith("tokenizer/") for name in changed):
        return ["tokenizer", "samples"]
    return changed


def dataset_status(cfg, deep: bool = False):
    reads = list(cfg.DATASET.CUSTOMIZED_DATASETS)
    reads += [f"hub:{HubEntry.parse(entry).describe()}" for entry in cfg.DATASET.HUGGINGFACE_DATASETS]
    if not cfg.TOKENIZER.TRAIN:
        reads.append(f"tokenizer:{cfg.TOKENIZER.NAME_OR_PATH}")
    root = layout.dataset_dir(cfg)
    status = manifest_status(root, stage_settings(cfg), reads=reads, writes=[root],
                             outputs_ok=lambda: bool((read_manifest(root) or {}).get("shards")),
                             damaged=damaged_outputs(cfg, deep))
    # The plan shows it: validation could not ask the hub about these entries.
    if not status.complete and (note := hub_check.skipped_note(cfg.DATASET.HUGGINGFACE_DATASETS)):
        status.detail = f"{status.detail}; {note}"
    return status


def estimate_bytes(cfg) -> int:
    """Disk the stage may need (checked by the runner): the text shards (~the corpus) plus the samples (~2 bytes per
    token plus padding, ~1x the corpus per masked copy). Hub corpora count 0: their size is unknown before the
    download."""
    copies = cfg.DATASET.DUP_FACTOR if cfg.DATASET.MASKING == "static" else 1
    return folder_bytes(cfg.DATASET.CUSTOMIZED_DATASETS) * (2 + copies)


def predictions_problem(cfg, keys=("DATASET.MAX_PREDICTIONS_PER_SEQ", "DATASET.MAX_SEQ_LENGTH")) -> str:
    """Why a sample cannot hold MAX_PREDICTIONS_PER_SEQ masked positions ("" when it can): [CLS] and [SEP] are never
    masked. ``keys`` name the two settings as the user knows them (config keys, or a script's flags)."""
    d = cfg.DATASET
    if d.MAX_PREDICTIONS_PER_SEQ <= d.MAX_SEQ_LENGTH - 2:
        return ""
    return (f"{keys[0]} = {d.MAX_PREDICTIONS_PER_SEQ} exceeds the {d.MAX_SEQ_LENGTH - 2} text tokens of a sample"
            f" ({keys[1]} - 2)")


def validate_config(cfg) -> list:
    """Checks of the dataset settings: cheap ones, then what `datasets` cannot read in DATASET.HUGGINGFACE_DATASETS
    (asking the hub when it can be reached; entries are well formed even when the stage is off, for the ID)."""
    if not cfg.DATASET.ENABLED:
        return hub_check.check_entry_shapes(cfg.DATASET.HUGGINGFACE_DATASETS)
    problems = hub_check.check_hub_entries(cfg.DATASET.HUGGINGFACE_DATASETS)
    d, t = cfg.DATASET, cfg.TOKENIZER
    for folder in d.CUSTOMIZED_DATASETS:
        try:
            list_corpus_files(folder)
        except DataError as e:
            problems.append(f"DATASET.CUSTOMIZED_DATASETS: {e}")
    if not t.TRAIN:
        try:
            tokenizer_source(t.NAME_OR_PATH)  # a folder that cannot hold a tokenizer; a hub name passes
        except DataError as e:
            problems.append(f"TOKENIZER.NAME_OR_PATH: {e}")
    if t.TRAIN and t.ADD_DOMAIN_TOKENS:
        problems.append("TOKENIZER.ADD_DOMAIN_TOKENS extends a loaded vocabulary, but TOKENIZER.TRAIN is True (a"
                        " trained vocabulary is the corpus's own already): set one of them")
    if problem := predictions_problem(cfg):
        problems.append(problem)
    if d.FRAC_TEST > 0 and d.NUM_TEST_SHARDS == 0:
        problems.append(f"DATASET.FRAC_TEST = {d.FRAC_TEST} needs DATASET.NUM_TEST_SHARDS >= 1 (or set FRAC_TEST 0)")
    try:
        memory.check_memory_cap(cfg.SYSTEM.MAX_MEMORY_IN_GB, MEMORY_KEY, uses_hub=bool(d.HUGGINGFACE_DATASETS))
    except ConfigError as e:
        problems.extend(e.problems)
    return problems
