"""The tokenizer the samples are made with: a new WordPiece vocabulary trained on the corpus, or a loaded one,
saved as a Hugging Face fast-tokenizer folder next to the data with ``extremebert_tokenizer.json`` recording the
request and the ids the sample writer needs. Workers load only its ``tokenizer.json`` with ``tokenizers``; the
functions here that import transformers are meant to run in a child process (``workers.run_in_child``).

A loaded vocabulary may be extended with the corpus words it splits most (TOKENIZER.ADD_DOMAIN_TOKENS, README): a
general vocabulary cuts a domain's words into pieces ("cardiomyopathy" -> card ##iom ##yo ##pathy), each taking a
position of the sample. Words are as the tokenizer's own normaliser and pre-tokeniser cut them; the new pieces are
word-initial and take ids after every existing one, so WordPiece's longest match gives each word one token. Tokens
per word are measured on the held-out shards, text the words were not chosen from, so the saving is not flattered.
"""
import json
import logging
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.errors import ConfigError, DataError
from pipeline.log_setup import progress_bars
from pipeline.manifest import read_json, write_json_atomic
from pipeline.tokenizer_loading import load_tokenizer, lowercases

log = logging.getLogger(__name__)

INFO_FILE = "extremebert_tokenizer.json"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # [PAD] first, so that pad id = 0
TRAIN_BATCH_LINES = 1000
TOKENS_PER_WORD_CHARS = 5_000_000  # held-out characters the tokens-per-word figure reads (a stable ratio)
SHOWN = 20  # new words listed in the tokenizer info and the log


@dataclass(frozen=True)
class TokenizerRequest:
    name_or_path: str
    train: bool = False
    vocab_size: int = 30522
    min_frequency: int = 2
    train_max_chars: int = 0
    do_lower_case: bool = True
    key: str = "TOKENIZER.NAME_OR_PATH"  # how the user names the setting, for error messages
    add_domain_tokens: int = 0  # corpus words appended to a loaded vocabulary (see the module docstring)


def iter_text_batches(text_files, max_chars: int):
    """Batches of non-blank lines from ``text_files``, stopping after ``max_chars`` characters (0 = all)."""
    used, batch = 0, []
    for path in text_files:
        with open(path, encoding="utf-8", newline="\n") as f:
            for line in filter(None, map(str.strip, f)):
                batch.append(line)
                used += len(line)
                enough = max_chars and used >= max_chars
                if enough or len(batch) == TRAIN_BATCH_LINES:
                    yield batch
                    batch = []
                if enough:
                    return
    if batch:
        yield batch


def _canonical_vocab(vocab: dict) -> dict:
    """``vocab`` renumbered: special tokens first (in SPECIAL_TOKENS order), then every other token sorted. The Rust
    trainer assigns ids in hash-map order, which differs from run to run although the tokens come out the same;
    sorting makes the ids, and hence the samples, reproducible."""
    others = sorted(t for t in vocab if t not in SPECIAL_TOKENS)
    return {token: i for i, token in enumerate(list(SPECIAL_TOKENS) + others)}


def train_wordpiece(text_files, vocab_size: int, min_frequency: int, max_chars: int, do_lower_case: bool):
    """A BERT-style WordPiece ``tokenizers.Tokenizer`` trained on the lines of ``text_files``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                      strip_accents=None, lowercase=do_lower_case)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(SPECIAL_TOKENS), continuing_subword_prefix="##",
                                        show_progress=progress_bars())
    tokenizer.train_from_iterator(iter_text_batches(text_files, max_chars), trainer=trainer)
    tokenizer.model = models.WordPiece(_canonical_vocab(tokenizer.get_vocab()), unk_token="[UNK]",
                                       continuing_subword_prefix="##")
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id),
                                                                                   ("[SEP]", sep_id)])
    return tokenizer


def raw_ids_tokenizer(backend):
    """A copy of the ``tokenizers.Tokenizer`` ``backend`` that gives every token id of a text: no padding, no
    truncation. Samples are packed from raw ids, but a tokenizer.json may be saved padded and truncated (those of
    sentence-transformers models are, to 128), which would put [PAD] inside samples and cut long paragraphs."""
    from tokenizers import Tokenizer

    raw = Tokenizer.from_str(backend.to_str())
    raw.no_padding()
    raw.no_truncation()
    return raw


def _wrap_trained(tokenizer, do_lower_case: bool):
    from transformers import BertTokenizerFast

    return BertTokenizerFast(tokenizer_object=tokenizer, do_lower_case=do_lower_case, unk_token="[UNK]",
                             pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def load_pretrained_tokenizer(request: TokenizerRequest):
    """The tokenizer named by ``request.name_or_path``, loaded as every stage loads one, that also has the Rust
    ``tokenizer.json`` the sample workers read."""
    tokenizer = load_tokenizer(request.name_or_path, request.do_lower_case, setting=request.key)
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise DataError(f"{request.key}: '{request.name_or_path}' has no fast (Rust) tokenizer; give one that has a"
                        f" tokenizer.json or a vocab.txt")
    return tokenizer


def _words(backend, line: str) -> list:
    normalized = backend.normalizer.normalize_str(line) if backend.normalizer is not None else line
    return [word for word, _ in backend.pre_tokenizer.pre_tokenize_str(normalized)]


def count_words(backend, files, max_chars: int) -> Counter:
    """How often each word (normalised, pre-tokenised) occurs in the first ``max_chars`` characters of ``files``."""
    return Counter(word for batch in iter_text_batches(files, max_chars) for line in batch
                   for word in _words(backend, line))


def most_split_words(backend, counts: Counter, n: int) -> list:
    """The ``n`` words that save the most tokens if each became one: count x (pieces - 1), ties by the word."""
    words = sorted(counts)
    encodings = backend.encode_batch([[word] for word in words], is_pretokenized=True, add_special_tokens=False)
    unk = backend.token_to_id(backend.model.unk_token)
    scored = [(counts[word] * (len(e.ids) - 1), word) for word, e in zip(words, encodings)
              if len(e.ids) > 1 and unk not in e.ids]
    return [word for _, word in sorted(scored, key=lambda item: (-item[0], item[1]))[:n]]


def extended(backend, words: list):
    """A copy of the ``tokenizers.Tokenizer`` ``backend`` whose WordPiece vocabulary also holds ``words``, with ids
    after every existing one."""
    from tokenizers import Tokenizer

    data = json.loads(backend.to_str())
    vocab = data["model"]["vocab"]
    next_id = max(list(vocab.values()) + [token["id"] for token in data.get("added_tokens", [])]) + 1
    for offset, word in enumerate(words):
        vocab[word] = next_id + offset
    return Tokenizer.from_str(json.dumps(data))


def tokens_per_word(backend, files, max_chars: int = TOKENS_PER_WORD_CHARS) -> float:
    """Tokens per pre-tokenizer word of ``backend`` over the first ``max_chars`` characters of ``files``."""
    tokens = words = 0
    for batch in iter_text_batches(files, max_chars):
        tokens += sum(len(e.ids) for e in backend.encode_batch(batch, add_special_tokens=False))
        words += sum(len(_words(backend, line)) for line in batch)
    return tokens / words if words else 0.0


def _with_domain_tokens(tokenizer, request: TokenizerRequest, train_files, held_out_files) -> tuple:
    """(``tokenizer`` extended by ``request.add_domain_tokens`` words of ``train_files``, a record of what was added
    and the tokens per word before and after on ``held_out_files``, or on ``train_files`` when there are none), or
    ``(tokenizer, None)`` when none are asked for. The counts use raw ids (no padding or truncation); the extended
    tokenizer keeps the loaded one's settings."""
    if not request.add_domain_tokens:
        return tokenizer, None
    if not train_files:
        raise ConfigError("TOKENIZER.ADD_DOMAIN_TOKENS needs training text, but there are no train text shards")
    raw = raw_ids_tokenizer(tokenizer.backend_tokenizer)
    words = most_split_words(raw, count_words(raw, train_files, request.train_max_chars), request.add_domain_tokens)
    longer = extended(tokenizer.backend_tokenizer, words)
    measured_on = list(held_out_files) or list(train_files)
    per_word = {"base": round(tokens_per_word(raw, measured_on), 4),
                "extended": round(tokens_per_word(raw_ids_tokenizer(longer), measured_on), 4)}
    record = {"added": len(words), "first": words[:SHOWN], "tokens_per_word": per_word,
              "measured_on": "held-out text" if held_out_files else "training text"}
    log.info(f"domain tokens: {record['added']} words added ({', '.join(record['first'][:8])}, ...); tokens per word"
             f" on {record['measured_on']} {per_word['base']:.4f} -> {per_word['extended']:.4f}")
    return _wrap_trained(longer, lowercases(tokenizer)), record


def tokenizer_info(tokenizer, request: TokenizerRequest) -> dict:
    """What the sample writer and the manifest need to know about a Hugging Face tokenizer."""
    return {
        "request": asdict(request),
        "vocab_size": len(tokenizer),
        **{f"{name}_id": getattr(tokenizer, f"{name}_token_id") for name in ("pad", "cls", "sep", "mask", "unk")},
        "special_ids": sorted(set(tokenizer.all_special_ids)),
        "lowercases": lowercases(tokenizer),
    }


def read_tokenizer_info(tokenizer_dir):
    return read_json(Path(tokenizer_dir) / INFO_FILE)


def prepare_tokenizer(tokenizer_dir, request: TokenizerRequest, train_files=(), held_out_files=()) -> dict:
    """Train or load (and maybe extend) the tokenizer and save it into ``tokenizer_dir``, complete or not at all;
    returns its info. Reuses a folder saved earlier for the same request. Imports transformers."""
    tokenizer_dir = Path(tokenizer_dir)
    info = read_tokenizer_info(tokenizer_dir)
    if info and info.get("request") == asdict(request) and (tokenizer_dir / "tokenizer.json").is_file():
        return info
    if request.train:
        if not train_files:
            raise ConfigError("TOKENIZER.TRAIN needs training text, but there are no train text shards")
        tokenizer = _wrap_trained(train_wordpiece(train_files, request.vocab_size, request.min_frequency,
                                                  request.train_max_chars, request.do_lower_case),
                                  request.do_lower_case)
        domain = None
    else:
        tokenizer = load_pretrained_tokenizer(request)
        tokenizer, domain = _with_domain_tokens(tokenizer, request, train_files, held_out_files)
    info = tokenizer_info(tokenizer, request)
    if domain:
        info["domain_tokens"] = domain
    partial = tokenizer_dir.with_name(tokenizer_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer.save_pretrained(str(partial))
    if not (partial / "tokenizer.json").is_file():
        raise DataError(f"{request.key}: tokenizer '{request.name_or_path}' did not save a tokenizer.json")
    write_json_atomic(partial / INFO_FILE, info)
    shutil.rmtree(tokenizer_dir, ignore_errors=True)
    partial.replace(tokenizer_dir)
    return info
