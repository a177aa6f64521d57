"""The pretraining stage's output: ``final_model/``, a Hugging Face folder that stock transformers opens.

The trained ``BertForPreTraining`` is written as the stock model of the same maths (``pretraining.export_stock``):
``bert`` for post-LN, ``roberta-prelayernorm`` for pre-LN, with the tokenizer files next to it. Nothing of this
repository is needed to load it: ``AutoModelForMaskedLM``, ``AutoModelForSequenceClassification``,
``AutoTokenizer`` and ``pipeline("fill-mask")`` all open the folder as is. At the end of a run the weights are
DeepSpeed's fp32 master copies, gathered from every rank (``export_final_model``).
"""
from pathlib import Path

import torch

from pipeline.model_files import write_model_folder
from pretraining.export_stock import build_stock_masked_lm
from pretraining.modeling import BertForPreTraining, ModelConfig


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
    files): ``bert`` for a post-LN model, ``roberta-prelayernorm`` for a pre-LN one."""
    hf_model = build_stock_masked_lm(export_state_dict(model, config), config, tokenizer)
    write_model_folder(hf_model, tokenizer, output_dir)


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

    weights = full_precision_weights(model)
    if rank == 0:
        with torch.device("meta"):
            exported = BertForPreTraining(model_config)
        exported.load_state_dict(weights, assign=True, strict=True)
        save_final_model(exported.eval(), model_config, tokenizer, final_dir)
    dist.barrier()
