"""The pretraining stage's output: ``final_model/``, a Hugging Face folder that stock transformers opens as is
(``AutoModelForMaskedLM``, ``AutoTokenizer``, ``pipeline("fill-mask")``), and its model card.

The weights are DeepSpeed's fp32 master copies, gathered from every rank, written as the stock model of the same
maths (``pretraining.export_stock``): ``bert`` for post-LN, ``roberta-prelayernorm`` for pre-LN. The card is written
after the export and the curves and before the manifest, which records its size and hash with the model's files: a
card lost or changed makes ``final_model`` damaged, and the stage exports it again without training. Its facts come
from the run's own records (the outputs the manifest is about to record, ``metrics.jsonl``, the dataset's manifest,
the resolved config).
"""
import shutil
from pathlib import Path

import torch

from pipeline import layout
from pipeline.defaults import is_local_path
from pipeline.manifest import read_manifest
from pipeline.model_card import CURVES_NAME, command_line, pretrained_card, write_card
from pipeline.model_files import write_model_folder
from pretraining.export_stock import build_stock_masked_lm, stock_config
from pretraining.metrics_log import METRICS_NAME, read_metrics, split_metrics
from pretraining.modeling import BertForPreTraining, ModelConfig, parameter_count


def export_state_dict(model: BertForPreTraining, config: ModelConfig) -> dict:
    """``model``'s weights as fp32 CPU tensors under our names, with the vocabulary padding rows removed."""
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    state = {name: tensor.detach().to("cpu", torch.float32).clone() for name, tensor in model.state_dict().items()}
    vocab = config.tokenizer_vocab_size
    state["encoder.embeddings.word.weight"] = state["encoder.embeddings.word.weight"][:vocab].clone()
    state["head.bias"] = state["head.bias"][:vocab].clone()
    return state


def save_final_model(model: BertForPreTraining, config: ModelConfig, tokenizer, output_dir) -> None:
    """Write ``output_dir`` as a stock Hugging Face model folder (``config.json``, ``model.safetensors``, tokenizer
    files)."""
    hf_model = build_stock_masked_lm(export_state_dict(model, config), config, tokenizer)
    write_model_folder(hf_model, tokenizer, output_dir)


def export_final_model(model, model_config, tokenizer, final_dir: Path, rank: int) -> None:
    """Write the model folder (rank 0, atomically) from the fp32 weights: DeepSpeed's master copies under mixed
    precision/ZeRO, gathered from every rank under ZeRO-3, so every rank must call it."""
    import torch.distributed as dist
    from deepspeed.utils import safe_get_full_fp32_param

    weights = {}
    for name, param in model.named_parameters():
        full = safe_get_full_fp32_param(param)
        weights[name] = (full if full is not None else param.detach()).float().cpu()
    if rank == 0:
        with torch.device("meta"):
            exported = BertForPreTraining(model_config)
        exported.load_state_dict(weights, assign=True, strict=True)
        save_final_model(exported.eval(), model_config, tokenizer, final_dir)
    dist.barrier()


def card_facts(run, outputs: dict, device_name: str) -> dict:
    """The facts of ``pipeline.model_card.pretrained_card`` for ``run`` (a ``trainer.RunSetup``) and ``outputs``
    (what the manifest is about to record: steps, hours, tokens_seen, final_val_loss, precision, stop_reason)."""
    cfg, config, p = run.cfg, run.model_config, run.cfg.PRETRAIN
    train, _ = split_metrics(read_metrics(run.paths.output_dir / METRICS_NAME))
    # the samples' manifest: the dataset stage's (one folder up) or generate_samples.py's (in the folder)
    dataset = read_manifest(run.paths.samples_dir) or read_manifest(run.paths.samples_dir.parent) or {}
    corpora = [entry[0] for entry in cfg.DATASET.HUGGINGFACE_DATASETS if entry]
    horizon = f"{p.NUM_STEPS} steps" if p.SCHEDULE_BASIS != "time" else f"{p.TOTAL_TRAINING_HOURS} h"
    warmup = f"{p.WARMUP_STEPS} warmup steps" if p.WARMUP_STEPS else f"warmup {p.WARMUP_PROPORTION:g} of it"
    vocabulary = ("a WordPiece vocabulary trained on this corpus" if cfg.TOKENIZER.TRAIN
                  else f"`{cfg.TOKENIZER.NAME_OR_PATH}`")
    return {
        "license": cfg.PUBLISH.LICENSE, "title": f"ExtremeBERT {p.ID}" if p.ID else None,
        "model": outputs.get("model"), "model_type": stock_config(config, run.tokenizer).model_type,
        "parameters": parameter_count(config), "ln_mode": config.encoder_ln_mode,
        "tokenizer": f"{type(run.tokenizer).__name__} ({vocabulary})",
        "vocab_size": len(run.tokenizer), "seq_length": run.seq_length,
        "hub_datasets": [name for name in corpora if not is_local_path(name)],
        "local_corpora": [str(name) for name in corpora if is_local_path(name)]
        + [str(folder) for folder in cfg.DATASET.CUSTOMIZED_DATASETS],
        "dataset_id": cfg.DATASET.ID or None, "train_samples": dataset.get("train_samples"),
        "train_tokens": dataset.get("train_tokens"), "masking": cfg.DATASET.MASKING,
        "steps": outputs.get("steps"), "tokens_seen": outputs.get("tokens_seen"), "hours": outputs.get("hours"),
        "hardware": f"{run.world_size} x {device_name}", "precision": outputs.get("precision"),
        "batch_size": p.BATCH_SIZE, "stop_reason": outputs.get("stop_reason"),
        "schedule": f"{p.SCHEDULER}, peak learning rate {p.LEARNING_RATE:g}, over {horizon} ({warmup})",
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
