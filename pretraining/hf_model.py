"""The pretraining stage's output: ``final_model/``, a Hugging Face folder that stock transformers opens.

The trained ``BertForPreTraining`` is written as the stock model of the same maths (``pretraining.export_stock``):
``bert`` for post-LN, ``roberta-prelayernorm`` for pre-LN, with the tokenizer files next to it. Nothing of this
repository is needed to load it: ``AutoModelForMaskedLM``, ``AutoModelForSequenceClassification``,
``AutoTokenizer`` and ``pipeline("fill-mask")`` all open the folder as is.
"""
import torch

from pretraining.export_stock import build_stock_masked_lm
from pipeline.model_files import write_model_folder  # noqa: F401 (also this module's, for its callers)
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
