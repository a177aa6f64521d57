"""From the DeepSpeed engine to ``final_model/``: the fp32 master weights, gathered, written as a Hugging Face
folder by rank 0."""
from pathlib import Path

import torch

from pretraining.modeling import BertForPreTraining


def full_precision_weights(model) -> dict:
    """The model's weights in fp32, keyed like ``model.state_dict()``: DeepSpeed's fp32 master copies under mixed
    precision/ZeRO (gathered from every rank under ZeRO-3: all ranks must call this)."""
    from deepspeed.utils import safe_get_full_fp32_param

    weights = {}
    for name, param in model.named_parameters():
        full = safe_get_full_fp32_param(param)
        weights[name] = (full if full is not None else param.detach()).float().cpu()
    return weights


def export_final_model(model, model_config, tokenizer, final_dir: Path, rank: int) -> None:
    """Write the Hugging Face model folder (rank 0, atomically) from the fp32 weights; every rank must call it."""
    import torch.distributed as dist
    from pretraining.hf_model import save_final_model

    weights = full_precision_weights(model)
    if rank == 0:
        with torch.device("meta"):
            exported = BertForPreTraining(model_config)
        exported.load_state_dict(weights, assign=True, strict=True)
        save_final_model(exported.eval(), model_config, tokenizer, final_dir)
    dist.barrier()
