"""The one tokenizer loader: each kind of source it accepts (built here in tmp_path), the casing it chooses, and the
one-line DataError for each kind of unusable source."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import DataError
from pipeline.tokenizer_loading import (HUB_NAME, SAVED_FOLDER, TOKENIZER_JSON_FOLDER, VOCAB_FOLDER, load_tokenizer,
                                        lowercases, tokenizer_source)

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "hello", "world", "river", "school", "##s", "##ing"]
CASED_WORDS = WORDS + ["The", "Hello", "World"]


def write_vocab_folder(folder: Path, words=WORDS) -> Path:
    """A folder holding nothing but a BERT vocab.txt (the 24h-BERT habit)."""
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(SPECIALS + ["[unused0]"] + list(words)) + "\n", encoding="utf-8")
    return folder


def write_tokenizer_json_folder(folder: Path, words=CASED_WORDS, specials=SPECIALS) -> Path:
    """A folder holding only the tokenizer.json that the ``tokenizers`` library writes (no post-processor)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {token: i for i, token in enumerate(list(specials) + list(words))}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token=specials[1]))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    folder.mkdir(parents=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def test_vocab_only_folder_as_run_pretraining_tokenizer_name_gets_the_vocab_ids(tmp_path):
    folder = write_vocab_folder(tmp_path / "vocab")
    assert tokenizer_source(folder) == VOCAB_FOLDER
    tokenizer = load_tokenizer(str(folder), setting="--tokenizer_name")
    lines = (folder / "vocab.txt").read_text(encoding="utf-8").split()
    assert len(tokenizer) == len(lines)
    assert (tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id) == \
        (0, 2, 3, 4)
    encoded = tokenizer("the cats", "sat")
    assert tokenizer.convert_ids_to_tokens(encoded["input_ids"]) == ["[CLS]", "the", "cat", "##s", "[SEP]", "sat",
                                                                     "[SEP]"]


def test_vocab_only_folder_lower_cases_an_uncased_vocabulary_and_keeps_case_for_a_cased_one(tmp_path):
    uncased = load_tokenizer(write_vocab_folder(tmp_path / "uncased"))  # like bert-base-uncased's vocab.txt
    assert lowercases(uncased) and uncased.tokenize("Hello World") == ["hello", "world"]
    cased = load_tokenizer(write_vocab_folder(tmp_path / "cased", CASED_WORDS))
    assert not lowercases(cased) and cased.tokenize("Hello world") == ["Hello", "world"]
    asked = load_tokenizer(tmp_path / "uncased", do_lower_case=False)  # the request decides for a vocab.txt folder
    assert not lowercases(asked) and asked.tokenize("Hello") == ["[UNK]"]
    assert lowercases(load_tokenizer(tmp_path / "cased", do_lower_case=True))


def test_tokenizer_json_folder_keeps_its_normaliser_and_gets_bert_specials_and_framing(tmp_path):
    folder = write_tokenizer_json_folder(tmp_path / "tj")
    assert tokenizer_source(folder) == TOKENIZER_JSON_FOLDER
    tokenizer = load_tokenizer(folder)
    assert len(tokenizer) == len(SPECIALS) + len(CASED_WORDS)  # the specials are declared, not added
    assert (tokenizer.pad_token_id, tokenizer.mask_token_id, tokenizer.unk_token_id) == (0, 4, 1)
    encoded = tokenizer("Hello world", "The cat")
    assert tokenizer.convert_ids_to_tokens(encoded["input_ids"]) == ["[CLS]", "Hello", "world", "[SEP]", "The", "cat",
                                                                     "[SEP]"]
    assert encoded["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]


def test_tokenizer_json_folder_warns_when_do_lower_case_contradicts_it(tmp_path, capsys):
    tokenizer = load_tokenizer(write_tokenizer_json_folder(tmp_path / "tj"), do_lower_case=True, setting="KEY")
    assert not lowercases(tokenizer)  # its own normaliser wins
    assert "warning: KEY: do_lower_case = True but tokenizer" in capsys.readouterr().err


def test_saved_model_folder_loads_and_round_trips(tmp_path):
    from transformers import AutoTokenizer, BertConfig

    saved = load_tokenizer(write_vocab_folder(tmp_path / "vocab"))
    model = tmp_path / "model"
    BertConfig(vocab_size=len(saved), hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(model)
    saved.save_pretrained(str(model))
    assert tokenizer_source(model) == SAVED_FOLDER
    loaded = load_tokenizer(model)
    assert loaded.get_vocab() == saved.get_vocab() and lowercases(loaded)
    assert loaded("the cat")["input_ids"] == AutoTokenizer.from_pretrained(str(model))("the cat")["input_ids"]


def test_a_pre_ln_export_folder_gives_its_wordpiece_tokenizer(tmp_path):
    folder = tmp_path / "final_model"
    load_tokenizer(write_vocab_folder(tmp_path / "vocab")).save_pretrained(str(folder))
    (folder / "config.json").write_text(json.dumps({"model_type": "roberta-prelayernorm", "vocab_size": 20}))
    loaded = load_tokenizer(folder)
    assert len(loaded) == 20 and loaded.mask_token == "[MASK]" and lowercases(loaded)


def test_hub_name_offline_is_a_one_line_error():
    # HF_HUB_OFFLINE=1 (tests/conftest.py): transformers 5 raises, or hands back a 5-token stub.
    assert tokenizer_source("bert-base-uncased") == HUB_NAME
    with pytest.raises(DataError, match=r"^TOKENIZER.NAME_OR_PATH: (cannot load tokenizer 'bert-base-uncased' from"
                                        r" the Hugging Face Hub|tokenizer 'bert-base-uncased' loaded with only 5)"):
        load_tokenizer("bert-base-uncased", setting="TOKENIZER.NAME_OR_PATH")


def _error(source, **kwargs) -> str:
    with pytest.raises(DataError) as error:
        load_tokenizer(source, **kwargs)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_unusable_sources_are_one_line_errors_that_say_what_is_wrong(tmp_path):
    assert _error(tmp_path / "nowhere") == f"tokenizer folder does not exist: {tmp_path / 'nowhere'}"
    assert _error("./nowhere", setting="--tokenizer_name") == "--tokenizer_name: tokenizer folder does not exist:" \
                                                              " ./nowhere"
    (tmp_path / "empty").mkdir()
    assert _error(tmp_path / "empty").endswith("holds no tokenizer: expected vocab.txt, tokenizer.json or"
                                               " tokenizer_config.json")
    vocab = write_vocab_folder(tmp_path / "vocab") / "vocab.txt"
    assert _error(vocab) == f"{vocab} is a file: give the folder that holds the tokenizer files"
    assert _error("").startswith("no tokenizer given")


def test_an_empty_vocab_txt_is_named_without_a_word_about_the_hub(tmp_path):
    (tmp_path / "empty_vocab").mkdir()
    (tmp_path / "empty_vocab" / "vocab.txt").write_text("")
    vocab = tmp_path / "empty_vocab" / "vocab.txt"
    assert _error(vocab.parent, setting="TOKENIZER.NAME_OR_PATH") == \
        f"TOKENIZER.NAME_OR_PATH: {vocab} is empty: a BERT vocab.txt holds one token a line"


def test_stub_and_non_bert_tokenizers_are_refused(tmp_path):
    # transformers 5 builds a 5-token BERT tokenizer from a config alone, as it does offline for a hub name.
    (tmp_path / "stub").mkdir()
    (tmp_path / "stub" / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer"}')
    assert _error(tmp_path / "stub") == (f"tokenizer '{tmp_path / 'stub'}' loaded with only 5 tokens: its vocabulary"
                                         f" file holds (nearly) no tokens of its own; give a folder with a whole"
                                         f" vocabulary")
    no_bert_specials = write_tokenizer_json_folder(tmp_path / "other", specials=["<pad>", "<unk>", "<s>", "</s>"])
    assert _error(no_bert_specials) == (f"tokenizer '{no_bert_specials}' has no [PAD]/[CLS]/[SEP]/[MASK] token;"
                                        f" masked-LM pretraining and BERT finetuning need a BERT-style tokenizer")


def test_module_imports_without_transformers_so_light_processes_can_check_sources():
    code = "import sys, pipeline.tokenizer_loading; sys.exit('transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1]).returncode == 0
