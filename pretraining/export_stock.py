"""Our model as a stock transformers model of the same maths, so an exported folder opens with plain
``transformers``: ``BertForMaskedLM`` for post-LN, ``RobertaPreLayerNormForMaskedLM`` for pre-LN.

roberta-prelayernorm differs from ours in form, not in result: separate query/key/value projections (our fused
weight is split row-wise), and positions counted RoBERTa's way, from ``pad_token_id + 1`` over the non-padding
tokens; the position table gets ``pad_token_id + 1`` zero rows in front, so every real token of right-padded input
(what BERT tokenizers produce) reads the row it was trained with. Its MLM head applies GELU whatever ``hidden_act``
says, so a pre-LN model trained with another activation exports MLM logits only close to ours; the encoder, which
finetuning uses, is exact. ``state`` here has no vocabulary padding rows: the stock ``vocab_size`` is
``len(tokenizer)``, as transformers' tooling expects.
"""
import re
import warnings

import torch

# ModelConfig fields that BertConfig and RobertaPreLayerNormConfig carry under the same names and meaning.
SHARED_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
                 "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
                 "initializer_range", "layer_norm_eps")
PRE_LN_HEAD_ACTIVATION = "gelu"  # what RobertaPreLayerNormLMHead applies, fixed in its code

# Our module -> the stock model's, per architecture; "{i}" is a block index. The fused Q/K/V projection
# ("encoder.layers.{i}.attention.qkv") is handled by split_qkv, the position table by offset_position_table.
BERT_NAMES = {
    "encoder.embeddings.word": "bert.embeddings.word_embeddings",
    "encoder.embeddings.position": "bert.embeddings.position_embeddings",
    "encoder.embeddings.token_type": "bert.embeddings.token_type_embeddings",
    "encoder.embeddings.norm": "bert.embeddings.LayerNorm",
    "encoder.layers.{i}.attention.qkv": "bert.encoder.layer.{i}.attention.self",
    "encoder.layers.{i}.attention.out": "bert.encoder.layer.{i}.attention.output.dense",
    "encoder.layers.{i}.attention_norm": "bert.encoder.layer.{i}.attention.output.LayerNorm",
    "encoder.layers.{i}.ffn.up": "bert.encoder.layer.{i}.intermediate.dense",
    "encoder.layers.{i}.ffn.down": "bert.encoder.layer.{i}.output.dense",
    "encoder.layers.{i}.ffn_norm": "bert.encoder.layer.{i}.output.LayerNorm",
    "head.dense": "cls.predictions.transform.dense",
    "head.norm": "cls.predictions.transform.LayerNorm",
    "head": "cls.predictions",
}
ROBERTA_PRELAYERNORM_NAMES = {
    "encoder.embeddings.word": "roberta_prelayernorm.embeddings.word_embeddings",
    "encoder.embeddings.position": "roberta_prelayernorm.embeddings.position_embeddings",
    "encoder.embeddings.token_type": "roberta_prelayernorm.embeddings.token_type_embeddings",
    "encoder.embeddings.norm": "roberta_prelayernorm.embeddings.LayerNorm",
    "encoder.layers.{i}.attention_norm": "roberta_prelayernorm.encoder.layer.{i}.attention.LayerNorm",
    "encoder.layers.{i}.attention.qkv": "roberta_prelayernorm.encoder.layer.{i}.attention.self",
    "encoder.layers.{i}.attention.out": "roberta_prelayernorm.encoder.layer.{i}.attention.output.dense",
    "encoder.layers.{i}.ffn_norm": "roberta_prelayernorm.encoder.layer.{i}.intermediate.LayerNorm",
    "encoder.layers.{i}.ffn.up": "roberta_prelayernorm.encoder.layer.{i}.intermediate.dense",
    "encoder.layers.{i}.ffn.down": "roberta_prelayernorm.encoder.layer.{i}.output.dense",
    "encoder.final_norm": "roberta_prelayernorm.LayerNorm",
    "head.dense": "lm_head.dense",
    "head.norm": "lm_head.layer_norm",
    "head": "lm_head",
}
_BLOCK = re.compile(r"^encoder\.layers\.(\d+)\.")


def split_qkv(fused: torch.Tensor) -> dict:
    """The fused projection's weight or bias as ``{"query", "key", "value"}``: rows [0, h) project queries,
    [h, 2h) keys, [2h, 3h) values (the order ``SelfAttention`` reads them in)."""
    query, key, value = fused.chunk(3, dim=0)
    return {"query": query, "key": key, "value": value}


def offset_position_table(table: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """Our position table (row p = position p) with ``pad_token_id + 1`` zero rows in front, so that RoBERTa's
    position ``pad_token_id + 1 + p`` reads our row p."""
    return torch.cat([table.new_zeros(pad_token_id + 1, table.shape[1]), table])


def stock_keys(key: str, names: dict) -> list:
    """The stock parameter name(s) of our parameter ``key`` under ``names``: one, or for the fused Q/K/V
    projection the query, key and value names in the order ``split_qkv`` gives them."""
    module, kind = key.rsplit(".", 1)
    block = _BLOCK.match(key)
    template = _BLOCK.sub("encoder.layers.{i}.", module) if block else module
    if template not in names:
        raise KeyError(f"no stock name for our parameter {key}")
    theirs = names[template].format(i=block.group(1) if block else "")
    if template.endswith("attention.qkv"):
        return [f"{theirs}.{part}.{kind}" for part in ("query", "key", "value")]
    return [f"{theirs}.{kind}"]


def rename_weights(state: dict, names: dict) -> dict:
    """``state`` (our parameter names) under the stock names of ``names``; the fused Q/K/V split in three."""
    renamed = {}
    for key, tensor in state.items():
        targets = stock_keys(key, names)
        pieces = split_qkv(tensor).values() if len(targets) == 3 else [tensor]
        renamed.update(zip(targets, pieces))
    return renamed


def stock_config(config, tokenizer=None):
    """The ``BertConfig`` (post-LN) or ``RobertaPreLayerNormConfig`` (pre-LN) of our ``ModelConfig``: the
    vocabulary without padding rows, the tokenizer's pad id (positions are counted from it) and [CLS]/[SEP] as
    the begin/end ids, where RoBERTa has <s> and </s>."""
    pad_id = getattr(tokenizer, "pad_token_id", None)
    fields = dict(vocab_size=config.tokenizer_vocab_size,
                  pad_token_id=pad_id if pad_id is not None else config.pad_token_id,
                  **{name: getattr(config, name) for name in SHARED_FIELDS})
    if config.encoder_ln_mode == "post-ln":
        from transformers import BertConfig

        return BertConfig(**fields)
    from transformers import RobertaPreLayerNormConfig

    fields["max_position_embeddings"] += fields["pad_token_id"] + 1
    return RobertaPreLayerNormConfig(bos_token_id=getattr(tokenizer, "cls_token_id", None),
                                     eos_token_id=getattr(tokenizer, "sep_token_id", None), **fields)


def stock_weights(state: dict, hf_config) -> dict:
    """Our ``state`` under the names of the stock model ``hf_config`` describes."""
    if hf_config.model_type == "bert":
        return rename_weights(state, BERT_NAMES)
    state = dict(state)
    state["encoder.embeddings.position.weight"] = offset_position_table(state["encoder.embeddings.position.weight"],
                                                                        hf_config.pad_token_id)
    return rename_weights(state, ROBERTA_PRELAYERNORM_NAMES)


def build_stock_masked_lm(state: dict, config, tokenizer=None):
    """``BertForMaskedLM`` or ``RobertaPreLayerNormForMaskedLM`` holding ``state`` (our names, fp32, vocabulary
    without padding rows), in eval mode. Every stock parameter must come from ``state`` and every tensor of
    ``state`` must land somewhere; only the decoder, tied to the word embeddings and the head's bias, is not
    loaded."""
    from transformers import BertForMaskedLM, RobertaPreLayerNormForMaskedLM

    if config.encoder_ln_mode == "pre-ln" and config.hidden_act != PRE_LN_HEAD_ACTIVATION:
        warnings.warn(f"roberta-prelayernorm's MLM head applies {PRE_LN_HEAD_ACTIVATION}, this model's head "
                      f"{config.hidden_act}: the exported MLM logits approximate the trained ones (the encoder, "
                      f"which finetuning uses, is exact)", stacklevel=2)
    hf_config = stock_config(config, tokenizer)
    model_class = BertForMaskedLM if hf_config.model_type == "bert" else RobertaPreLayerNormForMaskedLM
    hf_model = model_class(hf_config)
    missing, unexpected = hf_model.load_state_dict(stock_weights(state, hf_config), strict=False)
    not_loaded = [name for name in missing if ".decoder." not in name]
    if not_loaded or unexpected:
        raise RuntimeError(f"weight export mismatch: not loaded {not_loaded}, unexpected {unexpected}")
    hf_model.tie_weights()
    return hf_model.eval()
