"""Make a Hugging Face sequence classifier cheaper to train and evaluate, without changing what it computes.

``make_lean(model)`` changes the model in place; its weights, its ``state_dict`` and what ``save_pretrained`` writes
stay exactly those of the stock model, so checkpoints, STILT sources and exported models open anywhere.

- **The last layer works on the first token only.** A sequence classifier (BERT's pooler, RoBERTa's head) reads
  nothing of the encoder's output but row 0. The last layer still needs keys and values of every token, but its
  queries, attention output, LayerNorms and feed-forward only for that row: of the layer's ~12 h^2 multiply-adds
  per token, ~2 h^2 remain (the K and V projections). For a 6-layer model that is ~14% of the encoder's matrix work,
  in the forward and in the backward pass; the logits and gradients are the same up to float rounding.
- **Dropout masks on a CPU are drawn ~4x cheaper** (``pretraining.modeling.cpu_dropout``): every ``nn.Dropout``,
  and the attention-probability dropout, which SDPA has no fused CPU kernel for. GPUs keep their fused kernels.
- **Freed large tensors stay in the process** (``keep_freed_memory``): the word-embedding gradient (vocab x hidden:
  47 MB for MiniLM) is allocated and freed every step; glibc hands blocks that large back to the kernel at once,
  and the next step page-faults all of it in again.
"""
import ctypes
import functools
import types

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.bert.modeling_bert import eager_attention_forward

from pretraining.modeling import Dropout, cpu_dropout

ATTENTION = "extremebert_sdpa"  # SDPA, with the cheaper dropout mask when training on a CPU
# Classifiers whose head reads only row 0 of the encoder output, with BERT's layer layout (the pre-LN variant keeps
# its LayerNorms inside the attention and intermediate modules, so the same code runs both).
CLS_ONLY = ("BertForSequenceClassification", "RobertaForSequenceClassification",
            "RobertaPreLayerNormForSequenceClassification")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def _attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """transformers' SDPA attention, except in training on a CPU, where SDPA would fall back to unfused math with
    a per-element Bernoulli mask: the same math here, with ``cpu_dropout``'s mask."""
    if dropout == 0 or query.device.type != "cpu":
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scores = torch.matmul(query, key.transpose(-2, -1)) * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, float("-inf")) if attention_mask.dtype == torch.bool \
            else scores + attention_mask
    probabilities = cpu_dropout(torch.softmax(scores, dim=-1), dropout)
    return torch.matmul(probabilities, value).transpose(1, 2).contiguous(), None


@functools.cache  # once per process
def _register_attention() -> None:
    AttentionInterface.register(ATTENTION, _attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)  # the masks SDPA takes


def _first_token_layer(layer, hidden_states, attention_mask=None, *args, **kwargs):
    """``layer``'s output for row 0 only (shape [batch, 1, hidden]): keys and values from every row."""
    attention = layer.attention
    normed = attention.LayerNorm(hidden_states) if hasattr(attention, "LayerNorm") else hidden_states  # pre-LN
    heads = attention.self
    batch = hidden_states.shape[0]

    def split(x):
        return x.view(batch, x.shape[1], -1, heads.attention_head_size).transpose(1, 2)

    query = split(heads.query(normed[:, :1]))
    key, value = split(heads.key(normed)), split(heads.value(normed))
    mask = attention_mask[:, :, :1] if attention_mask is not None and attention_mask.dim() == 4 else attention_mask
    attend = ALL_ATTENTION_FUNCTIONS.get_interface(heads.config._attn_implementation, eager_attention_forward)
    context, _ = attend(heads, query, key, value, mask, dropout=heads.dropout.p if heads.training else 0.0,
                        scaling=heads.scaling)
    first = attention.output(context.reshape(batch, 1, -1), hidden_states[:, :1])
    return layer.output(layer.intermediate(first), first)


def make_lean(model) -> list:
    """Apply the changes above that fit ``model``, in place; returns what was applied, for the log."""
    applied, config = [], model.config
    if (type(model).__name__ in CLS_ONLY and not config.is_decoder and not config.add_cross_attention
            and not config.chunk_size_feed_forward):
        last = model.base_model.encoder.layer[-1]
        last.forward = types.MethodType(_first_token_layer, last)
        applied.append("last layer on the first token only")
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, Dropout(child.p))
                replaced += 1
    if replaced:
        applied.append(f"cheaper CPU dropout masks ({replaced} dropouts)")
    if model.config._attn_implementation == "sdpa":
        _register_attention()
        model.set_attn_implementation(ATTENTION)
        applied.append("cheaper CPU attention dropout")
    return applied


def keep_freed_memory() -> bool:
    """Keep large freed blocks in the process instead of returning them to the kernel (glibc only; False where
    this is not glibc). The process's memory then stays at its peak, which a training job reaches anyway."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 2 ** 30) and libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
    except (OSError, AttributeError):
        return False
