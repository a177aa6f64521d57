"""Starting weights (PRETRAIN.INIT_FROM) into our ``BertForPreTraining``: the inverse of ``pretraining.export_stock``,
through its name tables.

A checkpoint names its tensors as stock transformers does (``bert.*``/``cls.*``, ``roberta_prelayernorm.*``/
``lm_head.*``), or without the model prefix for a bare encoder (``BertModel``, a sentence-transformers module), and
files converted from TF name LayerNorm parameters ``gamma``/``beta``. The query, key and value projections are
concatenated into our fused one; roberta-prelayernorm's position table loses its ``pad_token_id + 1`` leading rows;
pooler, next-sentence head and ``position_ids`` are skipped. Made up for, with a log line: a missing MLM head (fresh
initialisation, decoder tied to the word embeddings) and embedding rows of tokens the checkpoint does not know
(TOKENIZER.ADD_DOMAIN_TOKENS: each row and head bias starts as the mean of its pieces' rows). Anything else that
does not fit is a one-line ``DataError`` naming the tensor or token, raised before the engine is built.
"""
import re
from dataclasses import dataclass, field

import torch

from pipeline.errors import DataError
from pipeline.init_checkpoint import KEY, StartingCheckpoint
from pipeline.tokenizer_loading import load_tokenizer
from pretraining.export_stock import BERT_NAMES, ROBERTA_PRELAYERNORM_NAMES, stock_keys
from pretraining.modeling import BertForPreTraining, ModelConfig

# model type -> (our-name -> stock-name table, encoder prefix, MLM head prefix)
LAYOUTS = {"bert": (BERT_NAMES, "bert.", "cls."),
           "roberta-prelayernorm": (ROBERTA_PRELAYERNORM_NAMES, "roberta_prelayernorm.", "lm_head.")}
SKIPPED = re.compile(r"(^|\.)position_ids$|^(bert|roberta_prelayernorm)\.pooler\.|^cls\.seq_relationship\.")
DECODER_WEIGHTS = ("cls.predictions.decoder.weight", "lm_head.decoder.weight")  # tied: must equal the embeddings
DECODER_BIASES = {"cls.predictions.decoder.bias": "cls.predictions.bias", "lm_head.decoder.bias": "lm_head.bias"}
WORD_EMBEDDINGS, HEAD_BIAS = "encoder.embeddings.word.weight", "head.bias"
POSITIONS = "encoder.embeddings.position.weight"
VOCABULARY_ROWS = (WORD_EMBEDDINGS, HEAD_BIAS)  # one row per token id (ours padded to a multiple of 64)


def read_tensors(path) -> dict:
    """Every tensor of a ``model.safetensors`` or ``pytorch_model.bin``, in fp32."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        tensors = load_file(str(path))
    else:
        tensors = torch.load(path, map_location="cpu", weights_only=True)
    return {name: tensor.float() for name, tensor in tensors.items()}


def stock_state(tensors: dict, model_type: str) -> dict:
    """``tensors`` under the names of the stock ``...ForMaskedLM``: the model prefix added to a bare encoder's,
    gamma/beta renamed weight/bias."""
    _, encoder, head = LAYOUTS[model_type]
    bare = not any(name.startswith(encoder) for name in tensors)
    state = {}
    for name, tensor in tensors.items():
        name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name))
        state[encoder + name if bare and not name.startswith(head) else name] = tensor
    return state


@dataclass
class InitialWeights:
    """Our parameters from a checkpoint, checked against the model they will fill."""

    source: str
    tensors: dict  # our name -> tensor; the vocabulary tensors hold the checkpoint's rows only
    new_token_pieces: dict = field(default_factory=dict)  # new token id -> the checkpoint's token ids it replaces
    head_initialised: bool = False

    def apply(self, model: BertForPreTraining) -> None:
        """Copy the weights into ``model`` (freshly initialised: what is not copied keeps its initial value)."""
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, tensor in self.tensors.items():
                params[name][:tensor.shape[0]].copy_(tensor)
            for token_id, pieces in self.new_token_pieces.items():
                for name in VOCABULARY_ROWS:
                    params[name][token_id] = params[name][pieces].mean(dim=0)

    def describe(self) -> str:
        notes = [f"starting weights from {self.source} ({len(self.tensors)} tensors)"]
        if self.head_initialised:
            notes.append("it has no MLM head: the head is initialised (dense N(0, 0.02), LayerNorm identity, bias 0),"
                         " its decoder tied to the word embeddings")
        if self.new_token_pieces:
            notes.append(f"{len(self.new_token_pieces)} new tokens: each embedding row and head bias starts as the"
                         f" mean of its pieces'")
        return "; ".join(notes)


def _fail(checkpoint: StartingCheckpoint, message: str):
    raise DataError(f"{KEY}: {checkpoint.name} {message}")


def _checked(checkpoint, ours: str, stock: list, tensor, shape: tuple):
    vocabulary = ours in VOCABULARY_ROWS
    fits = tensor.shape[1:] == shape[1:] and tensor.shape[0] <= shape[0] if vocabulary else tensor.shape == shape
    if not fits:
        _fail(checkpoint, f"tensor '{stock[0]}' has shape {list(tensor.shape)} but this model needs"
                          f" {list(shape)} for {ours}" + (" (rows at most)" if vocabulary else ""))
    return tensor


def _our_tensors(checkpoint: StartingCheckpoint, state: dict, config: ModelConfig) -> tuple:
    """(our name -> tensor, the stock names used, whether the MLM head was initialised)."""
    names = LAYOUTS[checkpoint.model_type][0]
    with torch.device("meta"):
        shapes = {name: tuple(p.shape) for name, p in BertForPreTraining(config).named_parameters()}
    has_head = any(name in state for name in stock_keys("head.dense.weight", names) + stock_keys(HEAD_BIAS, names))
    tensors, used = {}, set()
    for ours, shape in shapes.items():
        if ours.startswith("head.") and not has_head:
            continue
        stock = stock_keys(ours, names)
        if ours == HEAD_BIAS and stock[0] not in state:  # some files keep only the decoder's copy of the bias
            stock = [next((d for d, b in DECODER_BIASES.items() if b == stock[0] and d in state), stock[0])]
        missing = [name for name in stock if name not in state]
        if missing:
            _fail(checkpoint, f"has no tensor '{missing[0]}' (needed for {ours}); it does not fit this model")
        tensor = torch.cat([state[name] for name in stock]) if len(stock) > 1 else state[stock[0]]
        if ours == POSITIONS and checkpoint.model_type == "roberta-prelayernorm":
            tensor = tensor[checkpoint.pad_token_id + 1:]
        tensors[ours] = _checked(checkpoint, ours, stock, tensor, shape)
        used.update(stock)
    return tensors, used, not has_head


def _check_leftovers(checkpoint, state: dict, used: set, embeddings) -> None:
    for name, tensor in state.items():
        if name in used or SKIPPED.search(name) or name in DECODER_BIASES:
            continue
        if name in DECODER_WEIGHTS:
            if not torch.equal(tensor, embeddings):
                _fail(checkpoint, f"has an MLM decoder '{name}' that is not tied to the word embeddings; this model"
                                  f" ties them")
            continue
        _fail(checkpoint, f"has tensor '{name}', which this model has no place for")


def _new_token_pieces(checkpoint: StartingCheckpoint, tokenizer, rows: int) -> dict:
    """New token id -> the ids the checkpoint's tokenizer splits it into, for every id of ``tokenizer`` past the
    checkpoint's vocabulary; the ids below must be the checkpoint's own tokens."""
    base = load_tokenizer(checkpoint.tokenizer_source, setting=KEY) if checkpoint.tokenizer_source else None
    size = len(tokenizer)
    if base is None:
        if size > rows:
            _fail(checkpoint, f"has {rows} embedding rows but the tokenizer has {size} tokens")
        return {}
    ours = tokenizer.get_vocab()
    for token, token_id in sorted(base.get_vocab().items(), key=lambda item: item[1]):
        if ours.get(token) != token_id:
            _fail(checkpoint, f"is not the samples' tokenizer: its token {token!r} is id {token_id} there and"
                              f" {ours.get(token)} here; make the samples with the checkpoint's tokenizer")
    if len(base) > rows:
        _fail(checkpoint, f"has {rows} embedding rows for the {len(base)} tokens of its own tokenizer")
    pieces = {}
    for token, token_id in ours.items():
        if token_id >= len(base):
            split = base(token.removeprefix("##"), add_special_tokens=False)["input_ids"]
            if not split:
                _fail(checkpoint, f"cannot split the new token {token!r} into pieces of its vocabulary")
            pieces[token_id] = split
    return pieces


def read_initial_weights(checkpoint: StartingCheckpoint, config: ModelConfig, tokenizer) -> InitialWeights:
    """The weights of ``checkpoint`` for a model of ``config`` whose samples were made with ``tokenizer``, checked
    against that model (shapes, names, vocabulary); nothing is loaded into a model yet."""
    problems = checkpoint.architecture_problems()
    if problems:
        raise DataError(problems[0])
    state = stock_state(read_tensors(checkpoint.weights_file), checkpoint.model_type)
    tensors, used, head_initialised = _our_tensors(checkpoint, state, config)
    names = LAYOUTS[checkpoint.model_type][0]
    _check_leftovers(checkpoint, state, used, state[stock_keys(WORD_EMBEDDINGS, names)[0]])
    pieces = _new_token_pieces(checkpoint, tokenizer, tensors[WORD_EMBEDDINGS].shape[0])
    return InitialWeights(checkpoint.name, tensors, pieces, head_initialised)
