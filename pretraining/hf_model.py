"""The pretraining stage's output: ``final_model/``, a Hugging Face folder that stock transformers opens.

The trained ``BertForPreTraining`` is written as the stock model of the same maths (``pretraining.export_stock``):
``bert`` for post-LN, ``roberta-prelayernorm`` for pre-LN, with the tokenizer files next to it. Nothing of this
repository is needed to load it: ``AutoModelForMaskedLM``, ``AutoModelForSequenceClassification``,
``AutoTokenizer`` and ``pipeline("fill-mask")`` all open the folder as is.
"""
import os
import shutil
from pathlib import Path

import torch

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


def write_model_folder(hf_model, tokenizer, output_dir) -> None:
    """``save_pretrained`` of model and tokenizer into a temporary sibling folder, then renamed into place, so a
    crash never leaves a half-written model behind (an existing folder is replaced)."""
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_dir.with_name(f".{output_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    hf_model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    old = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}")
    if output_dir.exists():
        os.replace(output_dir, old)
    os.replace(tmp, output_dir)
    shutil.rmtree(old, ignore_errors=True)


def save_final_model(model: BertForPreTraining, config: ModelConfig, tokenizer, output_dir) -> None:
    """Write ``output_dir`` as a stock Hugging Face model folder (``config.json``, ``model.safetensors``, tokenizer
    files): ``bert`` for a post-LN model, ``roberta-prelayernorm`` for a pre-LN one."""
    hf_model = build_stock_masked_lm(export_state_dict(model, config), config, tokenizer)
    write_model_folder(hf_model, tokenizer, output_dir)
