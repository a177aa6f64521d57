"""The tokenizer step: train a WordPiece vocabulary on the corpus, or load one and check that it is real."""
import json

import pytest

from dataset.tokenizer_setup import INFO_FILE, TokenizerRequest, load_pretrained_tokenizer, prepare_tokenizer
from pipeline.errors import DataError
from tests.test_dataset_fixtures import write_corpus, write_vocab


def test_trained_wordpiece_is_a_bert_fast_tokenizer_folder_that_autotokenizer_loads(tmp_path):
    from transformers import AutoTokenizer

    corpus = write_corpus(tmp_path / "corpus", files=2, articles_per_file=30)
    request = TokenizerRequest(name_or_path="", train=True, vocab_size=120, min_frequency=1, do_lower_case=True)
    info = prepare_tokenizer(tmp_path / "tok", request, sorted(corpus.glob("*.txt")))
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert tokenizer.is_fast and type(tokenizer).__name__.startswith("BertTokenizer")
    assert [tokenizer.convert_ids_to_tokens(i) for i in range(5)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert info["vocab_size"] == len(tokenizer) <= 120 and info["pad_id"] == 0 and info["mask_id"] == 4
    encoded = tokenizer("The River school")["input_ids"]
    assert encoded[0] == 2 and encoded[-1] == 3 and 1 not in encoded  # corpus words are in the vocabulary
    assert tokenizer.tokenize("RIVER") == tokenizer.tokenize("river")  # lower-cased


def test_training_respects_do_lower_case_false(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", files=1)
    request = TokenizerRequest(name_or_path="", train=True, vocab_size=200, min_frequency=1, do_lower_case=False)
    info = prepare_tokenizer(tmp_path / "tok", request, sorted(corpus.glob("*.txt")))
    assert info["lowercases"] is False


def test_prepared_tokenizer_is_reused_for_the_same_request_and_redone_for_another(tmp_path):
    vocab = write_vocab(tmp_path / "vocab")
    request = TokenizerRequest(name_or_path=str(vocab))
    prepare_tokenizer(tmp_path / "tok", request)
    stamp = (tmp_path / "tok" / INFO_FILE).stat().st_mtime_ns
    prepare_tokenizer(tmp_path / "tok", request)
    assert (tmp_path / "tok" / INFO_FILE).stat().st_mtime_ns == stamp
    info = prepare_tokenizer(tmp_path / "tok", TokenizerRequest(name_or_path=str(vocab), do_lower_case=False))
    assert info["request"]["do_lower_case"] is False and info["lowercases"] is False


def test_hub_name_that_resolves_to_a_stub_tokenizer_is_a_clear_error():
    # Offline, transformers 5 returns a 5-token tokenizer for a hub name it cannot fetch, or raises.
    with pytest.raises(DataError, match=r"TOKENIZER.NAME_OR_PATH: (tokenizer 'bert-base-uncased' loaded with only "
                                        r"\d+ tokens|cannot load tokenizer 'bert-base-uncased')"):
        load_pretrained_tokenizer(TokenizerRequest(name_or_path="bert-base-uncased"))


def test_folder_that_is_not_a_tokenizer_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="TOKENIZER.NAME_OR_PATH: .* holds no tokenizer"):
        load_pretrained_tokenizer(TokenizerRequest(name_or_path=str(tmp_path / "empty")))


def test_tokenizer_without_a_vocabulary_is_rejected_by_its_size(tmp_path):
    # transformers 5 builds a 5-token BERT tokenizer from a config alone (as it does offline for a hub name).
    (tmp_path / "stub").mkdir()
    (tmp_path / "stub" / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer"}')
    with pytest.raises(DataError, match=r"loaded with only 5 tokens"):
        load_pretrained_tokenizer(TokenizerRequest(name_or_path=str(tmp_path / "stub")))


def test_vocab_only_folder_is_saved_as_a_tokenizer_folder_with_the_requested_casing(tmp_path):
    from transformers import AutoTokenizer

    vocab = write_vocab(tmp_path / "vocab")  # a bare vocab.txt, as 24h-BERT's scripts take
    info = prepare_tokenizer(tmp_path / "tok", TokenizerRequest(name_or_path=str(vocab), key="--tokenizer_name"))
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert info["lowercases"] is True and tokenizer.tokenize("The RIVER") == ["the", "river"]
    assert info["vocab_size"] == len((vocab / "vocab.txt").read_text(encoding="utf-8").split()) == len(tokenizer)


def test_trained_ids_are_numbered_canonically(tmp_path):
    # The Rust trainer numbers tokens in hash-map order, different in every process; ids are renumbered (special
    # tokens, then the others sorted) so that the same vocabulary always gets the same ids. On real text the
    # vocabulary itself comes out the same run after run; merges tied in count can still go either way.
    corpus = write_corpus(tmp_path / "corpus", files=2, articles_per_file=30)
    request = TokenizerRequest(name_or_path="", train=True, vocab_size=150, min_frequency=1)
    prepare_tokenizer(tmp_path / "a", request, sorted(corpus.glob("*.txt")))
    vocab = json.loads((tmp_path / "a" / "tokenizer.json").read_text())["model"]["vocab"]
    ordered = sorted(vocab, key=vocab.get)
    assert ordered[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and ordered[5:] == sorted(ordered[5:])
    assert sorted(vocab.values()) == list(range(len(vocab)))
