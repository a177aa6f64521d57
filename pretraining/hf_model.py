"""Export of the pretrained model as a Hugging Face folder, and the ``extremebert`` architecture for pre-LN models.

A post-LN model is plain BERT: it is saved as stock ``bert`` (``BertForMaskedLM`` weight names, the fused Q/K/V
projection split back into query/key/value), so any transformers install loads it with no custom code.

A pre-LN model is not something stock BERT can express (LayerNorm before each sub-layer, plus a final LayerNorm),
so it is saved as model type ``extremebert``: the classes below wrap the very modules the pretraining model is
built from (``pretraining.modeling``), so the maths cannot drift between pretraining and finetuning. They follow
transformers' conventions (``num_labels``, ``problem_type``, ``SequenceClassifierOutput``, ``from_pretrained``) and
are registered with ``AutoConfig``/``AutoModel``/``AutoModelForMaskedLM``/``AutoModelForSequenceClassification`` by
``register_auto_classes()``, which ``import pretraining`` arranges to run.

Both exports drop the vocabulary padding rows (see ``pretraining.modeling``): ``config.vocab_size`` is
``len(tokenizer)``, as transformers' tooling expects. Imports come from transformers' submodules rather than its
lazy top level, because ``register_auto_classes`` may run while transformers' auto package is being imported.
"""
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import initialization as init
from transformers.configuration_utils import PreTrainedConfig
from transformers.modeling_outputs import BaseModelOutputWithPooling, MaskedLMOutput, SequenceClassifierOutput
from transformers.modeling_utils import PreTrainedModel

from pretraining.modeling import IGNORE_INDEX, BertForPreTraining, Encoder, MLMHead, ModelConfig, sdpa_padding_mask

MODEL_TYPE = "extremebert"
# ModelConfig fields that transformers' BertConfig (and ExtremeBertConfig) carry under the same names.
SHARED_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
                 "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
                 "initializer_range", "layer_norm_eps")


@strict
class ExtremeBertConfig(PreTrainedConfig):
    """BERT shape plus ``encoder_ln_mode``; field names and defaults as in transformers' ``BertConfig``."""

    model_type = MODEL_TYPE

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    encoder_ln_mode: str = "pre-ln"
    classifier_dropout: float | int | None = None
    pad_token_id: int | None = 0
    tie_word_embeddings: bool = True

    def to_model_config(self) -> ModelConfig:
        return ModelConfig(vocab_size=self.vocab_size, tokenizer_vocab_size=self.vocab_size,
                           encoder_ln_mode=self.encoder_ln_mode,
                           pad_token_id=self.pad_token_id if self.pad_token_id is not None else 0,
                           **{name: getattr(self, name) for name in SHARED_FIELDS})


class ExtremeBertPreTrainedModel(PreTrainedModel):
    config_class = ExtremeBertConfig
    config: ExtremeBertConfig
    base_model_prefix = "bert"
    accepts_loss_kwargs = False  # losses are plain means: let the Trainer scale them for gradient accumulation
    # Attention always runs through SDPA (pretraining.modeling); declaring it lets callers ask for "sdpa".
    _supports_sdpa = True

    def _init_weights(self, module):
        """transformers' defaults (N(0, initializer_range) linears and embeddings, unit LayerNorms) plus the MLM
        head's own bias parameter."""
        super()._init_weights(module)
        if isinstance(module, MLMHead):
            init.zeros_(module.bias)


class Pooler(nn.Module):
    """BERT's pooler: dense + tanh on the first ([CLS]) token. Not pretrained (no next-sentence task), so it starts
    fresh for classification, exactly as in stock ``BertForSequenceClassification`` loaded from an MLM checkpoint."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden):
        return torch.tanh(self.dense(hidden[:, 0]))


def _unsupported(**kwargs):
    """Refuse inputs the encoder has no use for, rather than silently ignore them."""
    for name, value in kwargs.items():
        if value is not None and value is not False:
            raise ValueError(f"{name} is not supported by the {MODEL_TYPE} model (positions are always 0..L-1, "
                             f"inputs are input_ids, attention weights are not returned)")


class ExtremeBertModel(ExtremeBertPreTrainedModel):
    """The encoder (embeddings, blocks, final LayerNorm in pre-LN mode) and an optional pooler."""

    def __init__(self, config: ExtremeBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.encoder = Encoder(config.to_model_config())
        self.pooler = Pooler(config.hidden_size) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self):
        return self.encoder.embeddings.word

    def set_input_embeddings(self, value):
        self.encoder.embeddings.word = value

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        _unsupported(position_ids=position_ids, inputs_embeds=inputs_embeds, output_attentions=output_attentions)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        encoder = self.encoder
        attn_mask = sdpa_padding_mask(attention_mask)
        x = encoder.embeddings(input_ids, token_type_ids)
        states = [x]
        for layer in encoder.layers:
            x = layer(x, attn_mask)
            states.append(x)
        x = states[-1] = encoder.final_norm(x)
        output = BaseModelOutputWithPooling(last_hidden_state=x,
                                            pooler_output=self.pooler(x) if self.pooler is not None else None,
                                            hidden_states=tuple(states) if output_hidden_states else None)
        return output if return_dict is not False else output.to_tuple()


class ExtremeBertForMaskedLM(ExtremeBertPreTrainedModel):
    """Encoder + MLM head whose decoder is the word-embedding matrix (tied by construction)."""

    def __init__(self, config: ExtremeBertConfig):
        super().__init__(config)
        self.bert = ExtremeBertModel(config, add_pooling_layer=False)
        self.cls = MLMHead(config.to_model_config())
        self.post_init()

    def get_output_embeddings(self):
        return None  # the decoder has no weight of its own: it reads the input embeddings at every call

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        outputs = self.bert(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                            output_attentions, output_hidden_states)
        logits = self.cls(outputs.last_hidden_state, self.bert.get_input_embeddings().weight)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        output = MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return output if return_dict is not False else output.to_tuple()


class ExtremeBertForSequenceClassification(ExtremeBertPreTrainedModel):
    """Encoder + pooler + dropout + linear classifier; regression (MSE) when ``num_labels == 1``, as in
    transformers' ``BertForSequenceClassification``."""

    def __init__(self, config: ExtremeBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = ExtremeBertModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        outputs = self.bert(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
                            output_attentions, output_hidden_states)
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None if labels is None else self._loss(logits, labels)
        output = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return output if return_dict is not False else output.to_tuple()

    def _loss(self, logits, labels):
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        if self.config.problem_type == "regression":
            return F.mse_loss(logits.squeeze(-1).float(), labels.float()) if self.num_labels == 1 else \
                F.mse_loss(logits.float(), labels.float())
        if self.config.problem_type == "single_label_classification":
            return F.cross_entropy(logits.reshape(-1, self.num_labels).float(), labels.reshape(-1))
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


def register_auto_classes() -> None:
    """Make ``AutoConfig``/``AutoModel``/``AutoModelForMaskedLM``/``AutoModelForSequenceClassification`` know the
    ``extremebert`` type. Idempotent."""
    from transformers.models.auto.configuration_auto import AutoConfig
    from transformers.models.auto.modeling_auto import (AutoModel, AutoModelForMaskedLM,
                                                        AutoModelForSequenceClassification)

    AutoConfig.register(MODEL_TYPE, ExtremeBertConfig, exist_ok=True)
    AutoModel.register(ExtremeBertConfig, ExtremeBertModel, exist_ok=True)
    AutoModelForMaskedLM.register(ExtremeBertConfig, ExtremeBertForMaskedLM, exist_ok=True)
    AutoModelForSequenceClassification.register(ExtremeBertConfig, ExtremeBertForSequenceClassification,
                                                exist_ok=True)


# ---------------------------------------------------------------------------------------------------------------
# Export

def _stock_bert_state_dict(state: dict, num_layers: int) -> dict:
    """Our post-LN weights under ``BertForMaskedLM``'s names (the fused Q/K/V split into query/key/value)."""
    renamed = {
        "bert.embeddings.word_embeddings.weight": state["encoder.embeddings.word.weight"],
        "bert.embeddings.position_embeddings.weight": state["encoder.embeddings.position.weight"],
        "bert.embeddings.token_type_embeddings.weight": state["encoder.embeddings.token_type.weight"],
        "cls.predictions.bias": state["head.bias"],
    }
    pairs = [("encoder.embeddings.norm", "bert.embeddings.LayerNorm"),
             ("head.dense", "cls.predictions.transform.dense"), ("head.norm", "cls.predictions.transform.LayerNorm")]
    for i in range(num_layers):
        ours, theirs = f"encoder.layers.{i}", f"bert.encoder.layer.{i}"
        pairs += [(f"{ours}.attention.out", f"{theirs}.attention.output.dense"),
                  (f"{ours}.attention_norm", f"{theirs}.attention.output.LayerNorm"),
                  (f"{ours}.ffn.up", f"{theirs}.intermediate.dense"),
                  (f"{ours}.ffn.down", f"{theirs}.output.dense"),
                  (f"{ours}.ffn_norm", f"{theirs}.output.LayerNorm")]
        for kind in ("weight", "bias"):
            query, key, value = state[f"{ours}.attention.qkv.{kind}"].chunk(3, dim=0)
            for name, tensor in (("query", query), ("key", key), ("value", value)):
                renamed[f"{theirs}.attention.self.{name}.{kind}"] = tensor
    for ours, theirs in pairs:
        for kind in ("weight", "bias"):
            renamed[f"{theirs}.{kind}"] = state[f"{ours}.{kind}"]
    return renamed


def _export_state_dict(model: BertForPreTraining, config: ModelConfig) -> dict:
    """Our weights as fp32 CPU tensors, with the vocabulary padding rows removed."""
    state = {name: tensor.detach().to("cpu", torch.float32).clone() for name, tensor in model.state_dict().items()}
    vocab = config.tokenizer_vocab_size
    state["encoder.embeddings.word.weight"] = state["encoder.embeddings.word.weight"][:vocab].clone()
    state["head.bias"] = state["head.bias"][:vocab].clone()
    return state


def _hf_config_fields(config: ModelConfig, tokenizer) -> dict:
    """The Hugging Face config fields of ``config``: the vocabulary without padding, the tokenizer's pad id."""
    pad_id = getattr(tokenizer, "pad_token_id", None)
    pad_id = pad_id if pad_id is not None else config.pad_token_id
    return dict(vocab_size=config.tokenizer_vocab_size, pad_token_id=pad_id,
                **{name: getattr(config, name) for name in SHARED_FIELDS})


def build_hf_masked_lm(model: BertForPreTraining, config: ModelConfig, tokenizer=None) -> PreTrainedModel:
    """A transformers masked-LM model holding ``model``'s weights: stock ``BertForMaskedLM`` for post-LN,
    ``ExtremeBertForMaskedLM`` for pre-LN."""
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    state = _export_state_dict(model, config)
    fields = _hf_config_fields(config, tokenizer)
    if config.encoder_ln_mode == "post-ln":
        from transformers.models.bert.configuration_bert import BertConfig
        from transformers.models.bert.modeling_bert import BertForMaskedLM

        hf_model = BertForMaskedLM(BertConfig(**fields))
        state = _stock_bert_state_dict(state, config.num_hidden_layers)
    else:
        hf_model = ExtremeBertForMaskedLM(ExtremeBertConfig(encoder_ln_mode=config.encoder_ln_mode, **fields))
        state = {_prefixed(name): tensor for name, tensor in state.items()}
    missing, unexpected = hf_model.load_state_dict(state, strict=False)
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}  # stock BERT's tied copies
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"weight export mismatch: missing {sorted(set(missing) - tied)}, unexpected {unexpected}")
    hf_model.tie_weights()
    return hf_model.eval()


def _prefixed(name: str) -> str:
    """Our parameter name inside ``ExtremeBertForMaskedLM``: the encoder under ``bert.``, the head as ``cls``."""
    if name.startswith("encoder."):
        return "bert." + name
    return "cls." + name.split(".", 1)[1]


def save_final_model(model: BertForPreTraining, config: ModelConfig, tokenizer, output_dir) -> None:
    """Write ``output_dir`` as a Hugging Face model folder (``config.json``, ``model.safetensors``, tokenizer files)
    that ``AutoModelForMaskedLM`` and ``AutoModelForSequenceClassification`` load. Written into a temporary sibling
    folder, then renamed into place, so a crash never leaves a half-written model behind."""
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_dir.with_name(f".{output_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    hf_model = build_hf_masked_lm(model, config, tokenizer)
    hf_model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    old = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}")
    if output_dir.exists():
        os.replace(output_dir, old)
    os.replace(tmp, output_dir)
    shutil.rmtree(old, ignore_errors=True)
