"""The one way every stage and script loads a tokenizer, and the one set of errors when it cannot.

Accepted: a folder with only a BERT ``vocab.txt`` (24h-BERT's habit), a folder with a ``tokenizer.json`` (as the
``tokenizers`` library saves one), a ``save_pretrained`` folder (``tokenizer_config.json`` beside the files), or a
hub name. Anything that gives no usable BERT-style tokenizer is a one-line ``DataError``, including the 5-token stub
transformers 5 returns for a hub name it cannot fetch offline. transformers is imported inside the functions, so
that light processes (the runner, status checks) can import this module.
"""
import logging
from pathlib import Path
from typing import Optional

from pipeline.defaults import is_local_path
from pipeline.errors import DataError, first_line

log = logging.getLogger(__name__)

VOCAB_FOLDER = "vocab.txt folder"
TOKENIZER_JSON_FOLDER = "tokenizer.json folder"
SAVED_FOLDER = "saved tokenizer folder"
HUB_NAME = "hub name"
BERT_SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                       "mask_token": "[MASK]"}
BERT_INPUT_NAMES = ["input_ids", "token_type_ids", "attention_mask"]
# Masked-LM samples need [PAD] and [MASK]; samples and finetuning inputs are framed by [CLS] ... [SEP].
REQUIRED_TOKENS = ("pad", "cls", "sep", "mask")
# A tokenizer with fewer ordinary (non-special) tokens than this is a stub, not a vocabulary.
MIN_ORDINARY_TOKENS = 10


def tokenizer_source(name_or_path) -> str:
    """What ``name_or_path`` is (one of the kinds above), judged from the files alone: cheap enough for config checks.
    Raises ``DataError`` for a missing folder or one that holds no tokenizer files."""
    name = str(name_or_path)
    if not name:
        raise DataError("no tokenizer given: name a tokenizer folder (a BERT vocab.txt folder will do) or a hub name")
    path = Path(name).expanduser()
    if not path.exists():
        if is_local_path(name):
            raise DataError(f"tokenizer folder does not exist: {name}")
        return HUB_NAME
    if not path.is_dir():
        raise DataError(f"{name} is a file: give the folder that holds the tokenizer files")
    if (path / "tokenizer_config.json").is_file():
        return SAVED_FOLDER
    if (path / "tokenizer.json").is_file():
        return TOKENIZER_JSON_FOLDER
    if (path / "vocab.txt").is_file():
        if (path / "vocab.txt").stat().st_size == 0:
            raise DataError(f"{path / 'vocab.txt'} is empty: a BERT vocab.txt holds one token a line")
        return VOCAB_FOLDER
    raise DataError(f"{name} holds no tokenizer: expected vocab.txt, tokenizer.json or tokenizer_config.json")


def lowercases(tokenizer) -> bool:
    """Whether ``tokenizer`` lower-cases its input (its Rust normaliser turns "A" into "a")."""
    normalizer = getattr(getattr(tokenizer, "backend_tokenizer", None), "normalizer", None)
    if normalizer is None:
        return bool(getattr(tokenizer, "do_lower_case", False))
    return normalizer.normalize_str("A") == "a"


def _load_vocab_folder(folder: Path, do_lower_case: Optional[bool]):
    from transformers import BertTokenizerFast

    vocab = folder / "vocab.txt"
    if do_lower_case is None:  # lower-case when that changes none of its ordinary tokens ([CLS] and such aside)
        with open(vocab, encoding="utf-8") as f:
            tokens = (line.rstrip("\n") for line in f)
            do_lower_case = not any(t != t.lower() for t in tokens if not (t.startswith("[") and t.endswith("]")))
    # vocab=, not vocab_file=: transformers 5 silently ignores vocab_file and builds a 5-token tokenizer.
    return BertTokenizerFast(vocab=str(vocab), do_lower_case=do_lower_case)


def _load_tokenizer_json_folder(folder: Path):
    """The ``tokenizer.json`` as written (normaliser, pre-tokeniser and all), its BERT special tokens declared when
    its vocabulary holds them, BERT's [CLS] A [SEP] B [SEP] framing when it has no post-processor of its own, and
    BERT's inputs (segment ids included)."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
    vocab = backend.get_vocab()
    if backend.post_processor is None and "[CLS]" in vocab and "[SEP]" in vocab:
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    present = {role: token for role, token in BERT_SPECIAL_TOKENS.items() if token in vocab}
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_input_names=BERT_INPUT_NAMES, **present)


def check_vocabulary(tokenizer, name: str, prefix: str = "") -> None:
    """Raise ``DataError`` when ``tokenizer`` is a stub: a hub name offline can load as one instead of failing, and a
    local folder gives one when its vocabulary file holds (nearly) nothing."""
    ordinary = len(tokenizer) - len(set(tokenizer.all_special_ids))
    if ordinary >= MIN_ORDINARY_TOKENS:
        return
    if Path(str(name)).expanduser().exists():
        raise DataError(f"{prefix}tokenizer '{name}' loaded with only {len(tokenizer)} tokens: its vocabulary file"
                        f" holds (nearly) no tokens of its own; give a folder with a whole vocabulary")
    raise DataError(f"{prefix}tokenizer '{name}' loaded with only {len(tokenizer)} tokens (a hub name offline"
                    f" without a cached copy gives such a stub); give a local tokenizer folder or go online")


def load_tokenizer(name_or_path, do_lower_case: Optional[bool] = None, *, setting: str = ""):
    """The tokenizer at ``name_or_path`` (any kind in the module docstring), checked to be usable.

    ``do_lower_case`` applies to a ``vocab.txt`` folder, whose files do not say; ``None`` there lower-cases when
    the vocabulary is uncased (bert-base-uncased's is). Every other kind carries its own normaliser, which is kept:
    a ``do_lower_case`` that contradicts it only draws a warning. ``setting`` names the flag or config key that gave
    ``name_or_path`` (e.g. ``--tokenizer_name``), to start the error messages.
    """
    name = str(name_or_path)
    prefix = f"{setting}: " if setting else ""
    try:
        kind = tokenizer_source(name)
    except DataError as e:
        raise DataError(f"{prefix}{e}") from None
    folder = Path(name).expanduser()
    try:
        if kind == VOCAB_FOLDER:
            tokenizer = _load_vocab_folder(folder, do_lower_case)
        elif kind == TOKENIZER_JSON_FOLDER:
            tokenizer = _load_tokenizer_json_folder(folder)
        else:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(folder) if kind == SAVED_FOLDER else name)
    except Exception as e:  # transformers raises OSError, ValueError, TypeError, JSON errors ... for a bad source
        where, hint = ("from the Hugging Face Hub", "; give a local tokenizer folder or go online") \
            if kind == HUB_NAME else (f"({kind})", "")
        raise DataError(f"{prefix}cannot load tokenizer '{name}' {where}: {first_line(e)}{hint}") from None
    check_vocabulary(tokenizer, name, prefix)
    missing = [f"[{t.upper()}]" for t in REQUIRED_TOKENS if getattr(tokenizer, f"{t}_token_id", None) is None]
    if missing:
        raise DataError(f"{prefix}tokenizer '{name}' has no {'/'.join(missing)} token; masked-LM pretraining and"
                        f" BERT finetuning need a BERT-style tokenizer")
    own = lowercases(tokenizer)
    if do_lower_case is not None and kind != VOCAB_FOLDER and own != do_lower_case:
        log.warning(f"{prefix}do_lower_case = {do_lower_case} but tokenizer '{name}' "
                    f"{'lower-cases' if own else 'keeps case'}; the tokenizer's own behaviour is kept")
    return tokenizer
