"""TOKENIZER.ADD_DOMAIN_TOKENS: extend a loaded WordPiece vocabulary with the corpus words it splits most.

A general vocabulary cuts a domain's own words into pieces ("cardiomyopathy" -> card ##iom ##yo ##pathy): each
piece takes one of the sample's positions, and the model has to assemble the word from them. The candidates are
the words of the training text, as the tokenizer's own normaliser and pre-tokeniser cut them, that the vocabulary
splits into k > 1 pieces (none of them [UNK]); adding one saves k - 1 tokens at each occurrence. The N words with
the largest count x (k - 1) are appended to the WordPiece vocabulary as word-initial pieces, after every existing
id (which keeps its own), so WordPiece's longest match gives each of them one token. Pretraining from
PRETRAIN.INIT_FROM then starts each new embedding row as the mean of its pieces' rows
(``pretraining.import_weights``).

Tokens per word (pre-tokenizer words: a punctuation mark counts as one) is measured before and after on text the
words were not chosen from (the held-out shards), so that the saving is not flattered.
"""
import json
from collections import Counter

from dataset.tokenizer_setup import iter_text_batches, raw_ids_tokenizer

TOKENS_PER_WORD_CHARS = 5_000_000  # held-out characters the tokens-per-word figure reads (a stable ratio)
SHOWN = 20  # new words listed in the tokenizer info and the log


def _words(backend, line: str) -> list:
    normalized = backend.normalizer.normalize_str(line) if backend.normalizer is not None else line
    return [word for word, _ in backend.pre_tokenizer.pre_tokenize_str(normalized)]


def count_words(backend, files, max_chars: int) -> Counter:
    """How often each word (normalised, pre-tokenised) occurs in the first ``max_chars`` characters of ``files``."""
    counts = Counter()
    for batch in iter_text_batches(files, max_chars):
        for line in batch:
            counts.update(_words(backend, line))
    return counts


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


def add_domain_tokens(backend, n: int, train_files, held_out_files, max_chars: int) -> tuple:
    """(the extended ``tokenizers.Tokenizer``, a record of what was added and the tokens per word before and after
    on ``held_out_files``, or on ``train_files`` when there are none). The counts use raw ids (no padding or
    truncation); the extended tokenizer keeps ``backend``'s settings."""
    raw = raw_ids_tokenizer(backend)
    words = most_split_words(raw, count_words(raw, train_files, max_chars), n)
    longer = extended(backend, words)
    measured_on = list(held_out_files) or list(train_files)
    record = {"added": len(words), "first": words[:SHOWN],
              "measured_on": "held-out text" if held_out_files else "training text",
              "tokens_per_word": {"base": round(tokens_per_word(raw, measured_on), 4),
                                  "extended": round(tokens_per_word(raw_ids_tokenizer(longer), measured_on), 4)}}
    return longer, record
