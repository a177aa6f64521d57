"""The model card of ``final_model/``: what this run recorded, gathered for ``pipeline.model_card``.

Written by the end of every run (``pretraining.trainer.finish``), after the export and the curves and before the
manifest, which then records the card's size and hash with the model's other files: a card that is lost or
changed makes ``final_model`` damaged, and the stage exports it again, card included, without training. Every fact
comes from the run's own records: the outputs the manifest is about to record, the last training line of
``metrics.jsonl``, the dataset's manifest and the resolved config.
"""
import shutil
from pathlib import Path

from pipeline import layout
from pipeline.defaults import is_local_path
from pipeline.manifest import read_manifest
from pipeline.model_card import CURVES_NAME, command_line, pretrained_card, write_card
from pretraining.metrics_log import METRICS_NAME, read_metrics, split_metrics
from pretraining.modeling import parameter_count


def _dataset_record(samples_dir: Path) -> dict:
    """The manifest of the samples: the dataset stage's (one folder up) or generate_samples.py's (in the folder)."""
    return read_manifest(samples_dir) or read_manifest(samples_dir.parent) or {}


def _schedule(cfg) -> str:
    p = cfg.PRETRAIN
    horizon = f"{p.NUM_STEPS} steps" if p.SCHEDULE_BASIS != "time" else f"{p.TOTAL_TRAINING_HOURS} h"
    warmup = f"{p.WARMUP_STEPS} warmup steps" if p.WARMUP_STEPS else f"warmup {p.WARMUP_PROPORTION:g} of it"
    return f"{p.SCHEDULER}, peak learning rate {p.LEARNING_RATE:g}, over {horizon} ({warmup})"


def _tokenizer_source(cfg) -> str:
    return "a WordPiece vocabulary trained on this corpus" if cfg.TOKENIZER.TRAIN else f"`{cfg.TOKENIZER.NAME_OR_PATH}`"


def _hardware(run, device_name: str) -> str:
    return f"{run.world_size} x {device_name}"


def card_facts(run, outputs: dict, device_name: str) -> dict:
    """The facts of ``pipeline.model_card.pretrained_card`` for ``run`` (a ``trainer.RunSetup``) and ``outputs``
    (what the manifest is about to record: steps, hours, tokens_seen, final_val_loss, precision, stop_reason)."""
    cfg, config = run.cfg, run.model_config
    train, _ = split_metrics(read_metrics(run.paths.output_dir / METRICS_NAME))
    dataset = _dataset_record(run.paths.samples_dir)
    hub = [entry[0] for entry in cfg.DATASET.HUGGINGFACE_DATASETS if entry and not is_local_path(entry[0])]
    local = [str(entry[0]) for entry in cfg.DATASET.HUGGINGFACE_DATASETS if entry and is_local_path(entry[0])]
    from pretraining.export_stock import stock_config

    return {
        "license": cfg.PUBLISH.LICENSE, "title": f"ExtremeBERT {cfg.PRETRAIN.ID}" if cfg.PRETRAIN.ID else None,
        "model": outputs.get("model"), "model_type": stock_config(config, run.tokenizer).model_type,
        "parameters": parameter_count(config), "ln_mode": config.encoder_ln_mode,
        "tokenizer": f"{type(run.tokenizer).__name__} ({_tokenizer_source(cfg)})",
        "vocab_size": len(run.tokenizer), "seq_length": run.seq_length,
        "hub_datasets": hub, "local_corpora": local + [str(folder) for folder in cfg.DATASET.CUSTOMIZED_DATASETS],
        "dataset_id": cfg.DATASET.ID or None, "train_samples": dataset.get("train_samples"),
        "train_tokens": dataset.get("train_tokens"), "masking": cfg.DATASET.MASKING,
        "steps": outputs.get("steps"), "tokens_seen": outputs.get("tokens_seen"), "hours": outputs.get("hours"),
        "hardware": _hardware(run, device_name), "precision": outputs.get("precision"),
        "batch_size": cfg.PRETRAIN.BATCH_SIZE, "schedule": _schedule(cfg), "stop_reason": outputs.get("stop_reason"),
        "final_train_loss": train[-1]["loss"] if train else None, "final_val_loss": outputs.get("final_val_loss"),
        "command": command_line(), "config_text": cfg.dump(),
    }


def write_final_card(run, outputs: dict, device_name: str, curves: Path) -> None:
    """``final_model/README.md``, and the curves next to it (when the run drew them) for the card to show."""
    final = run.paths.output_dir / layout.FINAL_MODEL
    facts = card_facts(run, outputs, device_name)
    if Path(curves).is_file():
        shutil.copyfile(curves, final / CURVES_NAME)
        facts["curves"] = True
    write_card(final, pretrained_card(facts))
