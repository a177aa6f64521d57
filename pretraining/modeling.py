"""The BERT we pretrain: a plain-PyTorch encoder with pre-LN or post-LN blocks and a sparse MLM head.

Design choices, each for speed without changing the maths of BERT:
- Attention goes through ``F.scaled_dot_product_attention`` with one fused Q/K/V projection (one GEMM, not three).
- Sparse prediction: the MLM head, and the last block's queries, attention output and feed-forward, run only on the
  ~15% of the positions that carry a label (``BertForPreTraining.forward``); the decoder is the largest GEMM of a
  small BERT (the 24h-BERT / ExtremeBERT trick).
- Dropout on CPU draws its mask ~4x cheaper than ``F.dropout`` (``cpu_dropout``).
- The vocabulary is padded up to a multiple of 64 for tensor-core friendly GEMM shapes; the padding rows are never
  input or label, the training loss gives their logits -inf (``MLMHead.forward``), and the export drops them.

No ``transformers`` import here: the Hugging Face export lives in ``pretraining/hf_model.py``.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.defaults import MODEL_PRESETS

# Shapes of the standard BERT sizes (Turc et al. 2019 for the small ones, Devlin et al. 2019 for base/large).
PRESETS = MODEL_PRESETS  # declared with the MODEL.PRESET setting
LN_MODES = ("pre-ln", "post-ln")
ACTIVATIONS = {
    "gelu": F.gelu,  # exact (erf) GELU, as in the original BERT and transformers' "gelu"
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),  # tanh approximation, transformers' "gelu_new"
    "relu": F.relu,
}
VOCAB_MULTIPLE = 64  # embedding/decoder rows padded to a multiple of this for efficient GEMM shapes
IGNORE_INDEX = -100  # label value of positions that are not predicted (the torch/transformers convention)


@dataclass
class ModelConfig:
    """Shape and regularisation of the model. ``vocab_size`` is already padded; ``tokenizer_vocab_size`` is
    ``len(tokenizer)``, the number of ids that can actually occur."""

    vocab_size: int
    tokenizer_vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    encoder_ln_mode: str = "pre-ln"
    pad_token_id: int = 0
    initializer_range: float = 0.02

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                             f"{self.num_attention_heads}")
        if self.encoder_ln_mode not in LN_MODES:
            raise ValueError(f"encoder_ln_mode must be one of {LN_MODES}, got {self.encoder_ln_mode!r}")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {sorted(ACTIVATIONS)}, got {self.hidden_act!r}")
        if not 0 < self.tokenizer_vocab_size <= self.vocab_size:
            raise ValueError(f"tokenizer_vocab_size {self.tokenizer_vocab_size} must be in (0, vocab_size "
                             f"{self.vocab_size}]")


def padded_vocab_size(tokenizer_vocab_size: int, multiple: int = VOCAB_MULTIPLE) -> int:
    """``tokenizer_vocab_size`` rounded up to a multiple of ``multiple``."""
    return -(-tokenizer_vocab_size // multiple) * multiple


def build_model_config(preset: str, tokenizer_vocab_size: int, **overrides) -> ModelConfig:
    """The preset's shape with ``overrides`` applied. For the shape keys (those a preset sets) 0 or None keeps the
    preset's value, the convention of the MODEL config keys and the CLI flags; for any other field only None
    does (a dropout of 0.0 is a real value). The vocabulary is padded to a multiple of 64."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[preset])
    values.update({key: value for key, value in overrides.items()
                   if value is not None and not (key in PRESETS[preset] and value == 0)})
    return ModelConfig(vocab_size=padded_vocab_size(tokenizer_vocab_size), tokenizer_vocab_size=tokenizer_vocab_size,
                       **values)


def model_config_from_cfg(cfg, tokenizer_vocab_size: int) -> ModelConfig:
    """The model described by the yacs ``MODEL`` section (see ``pipeline/defaults.py``)."""
    m = cfg.MODEL
    return build_model_config(
        m.PRESET, tokenizer_vocab_size, hidden_size=m.HIDDEN_SIZE, num_hidden_layers=m.NUM_HIDDEN_LAYERS,
        num_attention_heads=m.NUM_ATTENTION_HEADS, intermediate_size=m.INTERMEDIATE_SIZE, hidden_act=m.HIDDEN_ACT,
        hidden_dropout_prob=m.HIDDEN_DROPOUT_PROB, attention_probs_dropout_prob=m.ATTENTION_PROBS_DROPOUT_PROB,
        max_position_embeddings=m.MAX_POSITION_EMBEDDINGS, encoder_ln_mode=m.ENCODER_LN_MODE)


class Embeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout (as in BERT, in both LN modes)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None):
        seq_len = input_ids.shape[1]
        x = self.word(input_ids) + self.position.weight[:seq_len]
        if token_type_ids is None:
            x = x + self.token_type.weight[0]  # every token is segment 0: skip the lookup
        else:
            x = x + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))


def cpu_dropout(x, p: float):
    """Training-mode dropout with a mask drawn ~4x faster than ``F.dropout`` on CPU, where drawing the mask is
    most of dropout's cost (a Bernoulli sample per element): one 64-bit random word gives four 16-bit uniforms,
    and an element is dropped when its uniform falls below ``round(p * 65536)``, i.e. with probability ``p`` to
    within 2^-17. Kept elements are scaled by 1 / (1 - p), as ``F.dropout`` does."""
    count = x.numel()
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=x.device).random_(-2 ** 63, None)
    uniforms = words.view(torch.int16)[:count].view(x.shape)  # each in [-32768, 32767], uniformly
    keep = uniforms >= round(p * 65536) - 32768
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    """``nn.Dropout`` that uses ``cpu_dropout`` on CPU (on GPUs ``F.dropout`` is a fused kernel already)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        return cpu_dropout(x, self.p) if x.device.type == "cpu" else F.dropout(x, self.p, True)


def attention_with_cpu_dropout(q, k, v, attn_mask, p: float):
    """Softmax attention with dropout on the probabilities, for CPU training. SDPA has no fused CPU kernel that
    takes dropout and falls back to exactly this math (scores, softmax, dropout, weighted sum); spelling it out
    lets it use ``cpu_dropout``'s cheaper mask. Everywhere else (GPU, evaluation, no dropout) SDPA runs."""
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return torch.matmul(cpu_dropout(torch.softmax(scores, dim=-1), p), v)


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused Q/K/V projection and SDPA."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.attn_dropout = config.attention_probs_dropout_prob

    def forward(self, x, attn_mask, queries=None):
        """``x`` [B, L, hidden] supplies keys and values, and queries too unless ``queries`` [B, P, hidden] is
        given (the sparse last layer: only the rows that feed the MLM loss ask queries)."""
        batch, seq_len, hidden = x.shape
        head_dim = hidden // self.num_heads
        if queries is None:
            # [B, L, 3, heads, d] -> three [B, heads, L, d] views: no copy until SDPA needs one.
            q, k, v = self.qkv(x).view(batch, seq_len, 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        else:
            # Row slices of the fused weight: [:hidden] projects queries, [hidden:] keys and values.
            weight, bias = self.qkv.weight, self.qkv.bias
            q = F.linear(queries, weight[:hidden], bias[:hidden])
            q = q.view(batch, -1, self.num_heads, head_dim).transpose(1, 2)
            k, v = F.linear(x, weight[hidden:], bias[hidden:]).view(
                batch, seq_len, 2, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        if self.training and self.attn_dropout > 0 and x.device.type == "cpu":
            y = attention_with_cpu_dropout(q, k, v, attn_mask, self.attn_dropout)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                               dropout_p=self.attn_dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, -1, hidden))


class FeedForward(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACTIVATIONS[config.hidden_act]
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x):
        return self.down(self.act(self.up(x)))


class Block(nn.Module):
    """One transformer layer. pre-LN: ``x + f(LN(x))`` (stable at large learning rates, needs a final LN);
    post-LN: ``LN(x + f(x))`` (the original BERT, exported as a stock Hugging Face ``bert``)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.pre_ln = config.encoder_ln_mode == "pre-ln"
        self.attention = SelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = FeedForward(config)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, x, attn_mask, query_index=None):
        """``x`` [B, L, hidden] -> [B, L, hidden]; with ``query_index`` [B, P] only those positions of each
        sequence are computed (they still attend to every position) -> [B, P, hidden]."""
        if self.pre_ln:
            normed = self.attention_norm(x)
            if query_index is None:
                x = x + self.dropout(self.attention(normed, attn_mask))
            else:
                x = gather_rows(x, query_index) + self.dropout(
                    self.attention(normed, attn_mask, gather_rows(normed, query_index)))
            return x + self.dropout(self.ffn(self.ffn_norm(x)))
        if query_index is None:
            x = self.attention_norm(x + self.dropout(self.attention(x, attn_mask)))
        else:
            queries = gather_rows(x, query_index)
            x = self.attention_norm(queries + self.dropout(self.attention(x, attn_mask, queries)))
        return self.ffn_norm(x + self.dropout(self.ffn(x)))


def gather_rows(x, index):
    """``x[b, index[b, p]]`` for ``x`` [B, L, H] and ``index`` [B, P] -> [B, P, H]."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class Encoder(nn.Module):
    """Embeddings and the stack of blocks; in pre-LN mode a final LayerNorm (else the residual stream of the last
    block would reach the head un-normalised)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        pre_ln = config.encoder_ln_mode == "pre-ln"
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if pre_ln else nn.Identity()

    def forward(self, input_ids, attention_mask, token_type_ids=None, query_index=None):
        """Hidden states of the last block, before the final LayerNorm (the caller applies ``final_norm``, so the
        MLM loss can normalise only the gathered rows): [B, L, hidden], or with ``query_index`` [B, P] only those
        positions of the last block, [B, P, hidden] (every earlier block still computes every position, since
        they all feed the last block's keys and values)."""
        attn_mask = sdpa_padding_mask(attention_mask)
        x = self.embeddings(input_ids, token_type_ids)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x, attn_mask, query_index if i == last else None)
        return x


def sdpa_padding_mask(attention_mask):
    """The key-padding mask in the form SDPA wants: boolean ``[B, 1, 1, L]``, True = may attend; ``None`` when
    nothing is padded (lets SDPA pick its fastest kernel). Padded query rows still see the real keys, so no row is
    fully masked (which would give NaN)."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return attention_mask.bool()[:, None, None, :]


class MLMHead(nn.Module):
    """dense -> activation -> LayerNorm -> decoder; the decoder weight is the word-embedding matrix (tied), only
    its bias is the head's own."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACTIVATIONS[config.hidden_act]
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.tokenizer_vocab_size = config.tokenizer_vocab_size

    def forward(self, hidden, decoder_weight, mask_padding: bool = False):
        """Logits over the (padded) vocabulary. ``decoder_weight`` is passed in rather than held, so the tied
        tensor has one owner and one ``state_dict`` key (``encoder.embeddings.word.weight``). With
        ``mask_padding`` the padding columns get a bias of -inf: the softmax then gives them probability 0 and
        no gradient, exactly as if the logits had been sliced, without slicing's copies in forward and backward."""
        bias = self.bias
        if mask_padding and self.tokenizer_vocab_size < bias.shape[0]:
            columns = torch.arange(bias.shape[0], device=bias.device)
            bias = bias.masked_fill(columns >= self.tokenizer_vocab_size, float("-inf"))
        return F.linear(self.norm(self.act(self.dense(hidden))), decoder_weight, bias)


class BertForPreTraining(nn.Module):
    """BERT with the masked-language-model objective only (no next-sentence prediction)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.head = MLMHead(config)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        """N(0, initializer_range) for every linear and embedding weight, zero biases, LayerNorm = identity."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def encode(self, input_ids, attention_mask, token_type_ids=None):
        """Final hidden states ``[B, L, hidden]`` (after the final LayerNorm in pre-LN mode)."""
        return self.encoder.final_norm(self.encoder(input_ids, attention_mask, token_type_ids))

    def mlm_logits(self, input_ids, attention_mask, token_type_ids=None):
        """Dense MLM logits ``[B, L, tokenizer_vocab_size]`` at every position (for evaluation and export
        checks; training uses the sparse path in ``forward``)."""
        hidden = self.encode(input_ids, attention_mask, token_type_ids)
        return self.head(hidden, self.encoder.embeddings.word.weight)[..., :self.config.tokenizer_vocab_size]

    def forward(self, input_ids, attention_mask, labels, token_type_ids=None):
        """Mean cross-entropy over the positions where ``labels != -100``, computed past the last block's keys and
        values on those rows alone: every other row's output would be thrown away, so the loss equals the dense
        computation's (a test checks it)."""
        predicted = labels != IGNORE_INDEX
        counts = predicted.sum(dim=1)
        max_count = int(counts.max())  # one host sync per step, as any sparse gather needs
        if max_count == 0:
            # No label anywhere: no signal, but a loss the engine can backpropagate (a constant 0 with a graph).
            return self.encode(input_ids, attention_mask, token_type_ids).sum() * 0.0
        # Per sequence, the labelled positions first (stable sort keeps their order), then filler positions whose
        # results are dropped: a [B, P] query layout the attention kernel takes as is.
        query_index = torch.sort(predicted.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :max_count]
        valid = torch.arange(max_count, device=labels.device) < counts.unsqueeze(1)
        hidden = self.encoder(input_ids, attention_mask, token_type_ids, query_index=query_index)
        rows = self.encoder.final_norm(hidden[valid])
        targets = labels.gather(1, query_index)[valid]
        logits = self.head(rows, self.encoder.embeddings.word.weight, mask_padding=True)
        return F.cross_entropy(logits.float(), targets)


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` when ``enabled`` (``MODEL.COMPILE``), else ``model`` unchanged. The sparse head
    gathers a data-dependent number of rows, so the graph is compiled with dynamic shapes."""
    return torch.compile(model, dynamic=True) if enabled else model


def parameter_count(config: ModelConfig) -> int:
    """The parameters of ``BertForPreTraining(config)`` (the tied decoder counted once), from the shape alone. Per
    block: Q/K/V/output projections ``4 h^2 + 4 h``, feed-forward ``2 h i + i + h``, two LayerNorms ``4 h``."""
    h, i, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_layer = 4 * h * h + 2 * h * i + 9 * h + i
    embeddings = (config.vocab_size + config.max_position_embeddings + config.type_vocab_size + 2) * h
    head = h * h + 3 * h + config.vocab_size + (2 * h if config.encoder_ln_mode == "pre-ln" else 0)
    return embeddings + n * per_layer + head


def pretraining_flops_per_sample(config: ModelConfig, seq_len: int, num_predictions: float) -> float:
    """Forward + backward FLOPs of one training sample (matmuls only; backward = 2x forward), for MFU.

    Counts what the loss needs, as ``BertForPreTraining.forward`` computes it. Multiply-adds per token of a block:
    Q/K/V/output projections ``4 h^2``, feed-forward ``2 h i``, attention scores and weighted sum ``2 L h``. The
    last block computes all of that only for the ``num_predictions`` labelled rows, except its keys and values
    (``2 h^2`` for every token); the head (``h^2 + h V``) also runs on the labelled rows only.
    """
    h, i, n_layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = 4 * h * h + 2 * h * i + 2 * seq_len * h
    last_layer = seq_len * 2 * h * h + num_predictions * (per_token - 2 * h * h)
    encoder_macs = (n_layers - 1) * seq_len * per_token + last_layer
    head_macs = num_predictions * (h * h + h * config.vocab_size)
    return 3 * 2 * float(encoder_macs + head_macs)


def describe(config: ModelConfig) -> str:
    """One line for logs: shape and parameter count (without building the model)."""
    return (f"BERT {config.encoder_ln_mode} L={config.num_hidden_layers} H={config.hidden_size}"
            f" A={config.num_attention_heads} I={config.intermediate_size} vocab={config.tokenizer_vocab_size}->"
            f"{config.vocab_size} ({parameter_count(config) / 1e6:.1f}M parameters)")

