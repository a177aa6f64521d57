"""A checkpoint's tokenizer in the dataset stage: TOKENIZER.ADD_DOMAIN_TOKENS makes the corpus words it splits most
tokens of their own, after the existing ids; tokens per word fall on held-out text; pretraining from the checkpoint
starts each new row as the mean of its pieces' rows. A tokenizer.json saved padded and truncated (as
sentence-transformers save theirs) still gives samples of the whole text."""
import json
import string

import h5py
import numpy as np

import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertTokenizerFast

from dataset.sample_file import SampleOptions
from dataset.sample_jobs import generate_samples
from dataset.tokenizer_setup import TokenizerRequest, prepare_tokenizer
from pipeline.init_checkpoint import StartingCheckpoint
from pretraining.import_weights import read_initial_weights
from pretraining.modeling import BertForPreTraining, build_model_config

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Letters and continuation letters (so no word is [UNK]), a few pieces, and words the corpus uses as is.
VOCAB = SPECIALS + list(string.ascii_lowercase) + [f"##{c}" for c in string.ascii_lowercase] + \
    ["card", "##io", "##my", "##opathy", "ren", "##al", "the", "patient", "has", "no", "."]
# "cardiomyopathy" = card ##io ##my ##opathy (3 tokens saved per use), "renal" = ren ##al (1 saved), "xylo" = 3 saved
TRAIN_TEXT = "the patient has cardiomyopathy .\nthe patient has renal cardiomyopathy .\nno xylo renal renal .\n"
HELD_OUT_TEXT = "the patient has no cardiomyopathy .\nrenal renal .\n"


def base_checkpoint(folder):
    """A stock BertForMaskedLM over VOCAB, with its tokenizer: the checkpoint the vocabulary extends."""
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    model = BertForMaskedLM(config)
    with torch.no_grad():
        model.cls.predictions.bias.normal_()
    model.save_pretrained(folder)
    return model


def extended_tokenizer(tmp_path, count):
    (tmp_path / "train_shard_00000.txt").write_text(TRAIN_TEXT * 10)
    (tmp_path / "test_shard_00000.txt").write_text(HELD_OUT_TEXT)
    request = TokenizerRequest(name_or_path=str(tmp_path / "bert"), add_domain_tokens=count)
    info = prepare_tokenizer(tmp_path / "tokenizer", request, [tmp_path / "train_shard_00000.txt"],
                             [tmp_path / "test_shard_00000.txt"])
    return info, AutoTokenizer.from_pretrained(tmp_path / "tokenizer")


def test_the_words_the_vocabulary_splits_most_become_tokens_after_the_existing_ids(tmp_path):
    base_checkpoint(tmp_path / "bert")
    info, tokenizer = extended_tokenizer(tmp_path, 2)
    record = info["domain_tokens"]
    # counts x (pieces - 1): cardiomyopathy 20 x 3 = 60, renal 30 x 1 = 30, xylo 10 x 3 = 30 (ties by the word)
    assert record["added"] == 2 and record["first"] == ["cardiomyopathy", "renal"]
    assert len(tokenizer) == len(VOCAB) + 2 and info["vocab_size"] == len(VOCAB) + 2
    vocab = tokenizer.get_vocab()
    assert all(vocab[token] == i for i, token in enumerate(VOCAB))  # every existing id keeps its token
    assert (vocab["cardiomyopathy"], vocab["renal"]) == (len(VOCAB), len(VOCAB) + 1)
    assert tokenizer.tokenize("The patient has renal cardiomyopathy.") == ["the", "patient", "has", "renal",
                                                                           "cardiomyopathy", "."]
    per_word = record["tokens_per_word"]
    assert record["measured_on"] == "held-out text"
    # held-out: 9 words; 14 tokens before (card ##io ##my ##opathy, ren ##al twice), 9 after
    assert per_word == {"base": round(14 / 9, 4), "extended": 1.0}


def test_pretraining_from_the_checkpoint_starts_each_new_row_as_the_mean_of_its_pieces(tmp_path):
    original = base_checkpoint(tmp_path / "bert")
    _, tokenizer = extended_tokenizer(tmp_path, 3)
    config = build_model_config("bert-tiny", len(tokenizer), encoder_ln_mode="post-ln", hidden_size=16,
                                num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                max_position_embeddings=32)
    initial = read_initial_weights(StartingCheckpoint.locate(str(tmp_path / "bert"), with_weights=True), config,
                                   tokenizer)
    assert "3 new tokens: each embedding row and head bias starts as the mean of its pieces'" in initial.describe()
    model = BertForPreTraining(config)
    initial.apply(model)
    embeddings = original.bert.embeddings.word_embeddings.weight.detach()
    bias = original.cls.predictions.bias.detach()
    ours = model.encoder.embeddings.word.weight.detach()
    torch.testing.assert_close(ours[:len(VOCAB)], embeddings)
    for word, pieces in (("cardiomyopathy", ["card", "##io", "##my", "##opathy"]), ("renal", ["ren", "##al"]),
                         ("xylo", ["x", "##y", "##l", "##o"])):
        new_id, piece_ids = tokenizer.convert_tokens_to_ids(word), tokenizer.convert_tokens_to_ids(pieces)
        torch.testing.assert_close(ours[new_id], embeddings[piece_ids].mean(dim=0))
        torch.testing.assert_close(model.head.bias[new_id].detach(), bias[piece_ids].mean())


def test_a_tokenizer_saved_padded_and_truncated_still_gives_samples_of_the_whole_text(tmp_path):
    base_checkpoint(tmp_path / "bert")
    saved = tmp_path / "bert" / "tokenizer.json"
    settings = json.loads(saved.read_text())
    settings["padding"] = {"strategy": {"Fixed": 8}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0,
                           "pad_type_id": 0, "pad_token": "[PAD]"}
    settings["truncation"] = {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0}
    saved.write_text(json.dumps(settings))
    text = tmp_path / "text"
    text.mkdir()
    (text / "train_shard_00000.txt").write_text("the patient has renal cardiomyopathy . " * 6 + "\nno .\n")
    (text / "test_shard_00000.txt").write_text(HELD_OUT_TEXT)
    request = TokenizerRequest(name_or_path=str(tmp_path / "bert"), add_domain_tokens=1)
    info = prepare_tokenizer(tmp_path / "tokenizer", request, [text / "train_shard_00000.txt"],
                             [text / "test_shard_00000.txt"])
    assert info["domain_tokens"]["first"] == ["cardiomyopathy"]  # counted on whole, unpadded words
    generate_samples(text, tmp_path / "samples", tmp_path / "tokenizer", SampleOptions(max_seq_length=32), 1, 1.0,
                     progress=False)
    with h5py.File(tmp_path / "samples" / "train_shard_00000.hdf5") as f:
        rows, text_tokens = f["input_ids"][:], int(f.attrs["num_text_tokens"])
    assert text_tokens == 6 * 7 + 2  # every token of the text (renal = ren ##al): none cut at 8, no padding
    for row in rows:
        real = np.flatnonzero(row != 0)
        assert real[-1] == len(real) - 1, row  # [PAD] only after the sample's text, never inside it
