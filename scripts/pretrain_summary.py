"""Summarise the pretraining run from its manifest and ``metrics.jsonl`` (docs/interfaces.md, pretrain section)."""
import statistics

from pipeline import layout
from pipeline.manifest import read_json
from pretraining.metrics_log import read_metrics, split_metrics


def _median_of(records, key):
    values = [r[key] for r in records if isinstance(r.get(key), (int, float))]
    return statistics.median(values) if values else None


def summarize_pretraining(cfg) -> dict:
    """Steps, hours, final validation loss, tokens seen and throughput; ``available`` False with a reason when the
    run has no pretraining outputs (pretraining disabled, or finetuning an outside model)."""
    pretrain_dir = layout.pretrain_dir(cfg)
    manifest = read_json(pretrain_dir / "manifest.json")
    metrics_path = pretrain_dir / "metrics.jsonl"
    train, val = split_metrics(read_metrics(metrics_path))
    if not isinstance(manifest, dict) and not train and not val:
        reason = ("pretraining was disabled (PRETRAIN.ENABLED is False)" if not cfg.PRETRAIN.ENABLED
                  else "pretraining has not completed")
        return {"available": False, "reason": f"{reason}: no {pretrain_dir / 'manifest.json'}",
                "finetuned_model": layout.finetune_model_path(cfg)}
    manifest = manifest if isinstance(manifest, dict) else {}
    last_train = train[-1] if train else {}
    hours = manifest.get("hours")
    if hours is None and (train or val):
        hours = max(r.get("elapsed_s", 0) for r in train + val) / 3600
    tokens_seen = manifest.get("tokens_seen")
    tokens_per_s = _median_of(train, "tokens_per_s")
    if tokens_per_s is None and tokens_seen and hours:
        tokens_per_s = tokens_seen / (hours * 3600)
    return {
        "available": True,
        "complete": bool(manifest),  # False: summarised from metrics.jsonl of an unfinished run
        "steps": manifest.get("steps", last_train.get("step")),
        "hours": hours,
        "final_val_loss": manifest.get("final_val_loss", val[-1]["val_loss"] if val else None),
        # a run from PRETRAIN.INIT_FROM validates its starting model at step 0 (e.g. phase 2 starting from phase 1)
        "init_from": cfg.PRETRAIN.INIT_FROM,
        "initial_val_loss": val[0]["val_loss"] if val and val[0].get("step") == 0 else None,
        "final_train_loss": last_train.get("loss"),
        "tokens_seen": tokens_seen,
        "samples_per_s": manifest.get("samples_per_s", _median_of(train, "samples_per_s")),
        "tokens_per_s": tokens_per_s,
        "mfu": _median_of(train, "mfu"),
        "metrics_path": str(metrics_path) if train or val else "",
        "finetuned_model": layout.finetune_model_path(cfg),
    }
