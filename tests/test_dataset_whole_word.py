"""Whole-word masking (DATASET.MASKING_UNIT word) on real sentences whose words split into several WordPiece
pieces: static (the sample writer) and dynamic (the pretraining loader), the per-word 80/10/10, BERT-wwm's budget,
the flag, and token masking left exactly as it was."""
import hashlib

import h5py
import numpy as np
import pytest

from dataset import generate_samples
from dataset.masking import continuation_ids, mask_block
from dataset.sample_file import SampleOptions, ShardJob, shard_attributes, write_shard
from dataset.sample_jobs import check_word_pieces
from dataset.stage import sample_options
from pipeline.errors import ConfigError
from pipeline.script_flags import config_from_flags
from tests.test_dataset_fixtures import SPECIAL, tiny_tokenizer  # noqa: F401  (fixture)

SENTENCES = [
    "the nurses were helping patients with their treatments",
    "doctors reported unbelievably quick recoveries after treatment",
    "the hospital kindly thanked its helpful volunteers",
    "patients walked slowly towards the waiting rooms",
    "researchers replayed the recordings during their meetings",
    "the kindness of strangers helped the patients recover quickly",
]
WHOLE = ("the were with their after its of towards during doctor nurse patient hospital research volunteer room "
         "stranger meeting quick slow help kind walk wait treat play record report recover thank un re").split()
PIECES = "##s ##ed ##ing ##er ##ers ##ly ##ful ##ness ##ment ##ies ##believ ##ably ##play".split()
LENGTH, PREDICTIONS = 24, 6


@pytest.fixture(scope="module")
def wordpiece(tmp_path_factory):
    """A WordPiece tokenizer prepared as the stage would, whose vocabulary splits most words into pieces."""
    from dataset.tokenizer_setup import TokenizerRequest, prepare_tokenizer

    root = tmp_path_factory.mktemp("wordpiece")
    (root / "vocab").mkdir()
    tokens = SPECIAL + sorted(set(WHOLE)) + sorted(set(PIECES))
    (root / "vocab" / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    info = prepare_tokenizer(root / "tokenizer", TokenizerRequest(name_or_path=str(root / "vocab")))
    return root / "tokenizer", info


def _pieces(tokenizer_dir):
    from tokenizers import Tokenizer

    return {i: t for t, i in Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json")).get_vocab().items()}


def _words(row, pieces, info) -> list:
    """The words of one row as lists of positions, read from the piece strings (a ## piece joins the word before)."""
    words = []
    for position, token_id in enumerate(row):
        if token_id in (info["pad_id"], info["cls_id"], info["sep_id"]):
            continue
        if pieces[int(token_id)].startswith("##") and words and words[-1][-1] == position - 1:
            words[-1].append(position)
        else:
            words.append([position])
    return words


def _check_whole_words(original, masked, predicted, info, pieces, prob=0.15):
    """Every word is predicted whole or not at all; one 80/10/10 outcome per word; BERT-wwm's budget. Returns the
    outcome counts of the masked words of two pieces or more."""
    outcomes = {"mask": 0, "random": 0, "keep": 0}
    split_words = 0
    for row, out, chosen in zip(original, masked, predicted):
        words = _words(row, pieces, info)
        text_tokens = sum(map(len, words))
        budget = min(PREDICTIONS, max(1, int(np.rint(text_tokens * prob))))
        assert set(np.nonzero(out != row)[0]) <= set(np.nonzero(chosen)[0])  # only predicted positions change
        taken = 0
        for word in words:
            flags = chosen[word]
            assert flags.all() or not flags.any(), f"half-masked word at {word}"
            split_words += len(word) > 1
            if not flags.any():
                continue
            taken += len(word)
            mask = out[word] == info["mask_id"]
            assert mask.all() or not mask.any(), f"a word with some pieces [MASK] and some not: {word}"
            if len(word) > 1:
                kind = "mask" if mask.all() else "keep" if (out[word] == row[word]).all() else "random"
                outcomes[kind] += 1
        assert 0 < taken <= budget or not any(len(w) <= budget for w in words)
        # The greedy pass skips a word only when it no longer fits: every word left out overshoots what remains.
        assert all(len(w) > budget - taken for w in words if not chosen[w].any())
    assert split_words > 0
    return outcomes


def _rows(wordpiece, copies=90):
    """``[CLS] sentence [SEP] [PAD]...`` rows of token ids, each sentence ``copies`` times."""
    from tokenizers import Tokenizer

    tokenizer_dir, info = wordpiece
    tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    rows = np.full((len(SENTENCES) * copies, LENGTH), info["pad_id"], dtype=np.uint16)
    for i, sentence in enumerate(SENTENCES * copies):
        ids = tokenizer.encode(sentence, add_special_tokens=False).ids
        assert info["unk_id"] not in ids and len(ids) < LENGTH - 2
        rows[i, :len(ids) + 2] = [info["cls_id"], *ids, info["sep_id"]]
    return rows


def _shares(outcomes):
    total = sum(outcomes.values())
    assert total > 250  # enough multi-piece words for the shares to mean something
    return {kind: count / total for kind, count in outcomes.items()}


def test_static_word_masking_masks_every_piece_of_a_word_with_one_outcome_per_word(wordpiece):
    tokenizer_dir, info = wordpiece
    rows, pieces = _rows(wordpiece), _pieces(tokenizer_dir)
    vocab = {t: i for i, t in pieces.items()}
    masked, positions, labels = mask_block(
        rows, np.random.default_rng(3), masked_lm_prob=0.15, max_predictions=PREDICTIONS, pad_id=info["pad_id"],
        cls_id=info["cls_id"], sep_id=info["sep_id"], mask_id=info["mask_id"],
        candidates=np.arange(len(SPECIAL), len(pieces)), continuation=continuation_ids(vocab))
    predicted = np.zeros(rows.shape, dtype=bool)
    used = labels != 0
    predicted[np.nonzero(used)[0], positions[used].astype(int)] = True
    assert np.array_equal(labels[used], rows[np.nonzero(used)[0], positions[used]])
    shares = _shares(_check_whole_words(rows, masked, predicted, info, pieces))
    assert 0.74 < shares["mask"] < 0.86 and 0.05 < shares["random"] < 0.15 and 0.05 < shares["keep"] < 0.15
    again = mask_block(rows, np.random.default_rng(3), masked_lm_prob=0.15, max_predictions=PREDICTIONS,
                       pad_id=info["pad_id"], cls_id=info["cls_id"], sep_id=info["sep_id"], mask_id=info["mask_id"],
                       candidates=np.arange(len(SPECIAL), len(pieces)), continuation=continuation_ids(vocab))
    assert all(np.array_equal(a, b) for a, b in zip((masked, positions, labels), again))  # same seed, same masks


def _shard(tmp_path, wordpiece, masking, name="train_00000.txt"):
    tokenizer_dir, info = wordpiece
    text = tmp_path / name
    text.write_text("\n\n".join(SENTENCES * 150) + "\n", encoding="utf-8")
    out = tmp_path / f"{masking}.hdf5"
    options = SampleOptions(max_seq_length=LENGTH, masking=masking, masking_unit="word",
                            max_predictions_per_seq=PREDICTIONS, dup_factor=2)
    write_shard(ShardJob(text_path=str(text), out_path=str(out), split="train", shard_index=0,
                         tokenizer_file=str(tokenizer_dir / "tokenizer.json"), tokenizer_info=info, options=options,
                         batch_chars=1 << 20))
    return out


def test_sample_writer_masks_whole_words_and_records_the_unit(tmp_path, wordpiece):
    tokenizer_dir, info = wordpiece
    pieces = _pieces(tokenizer_dir)
    static, dynamic = _shard(tmp_path, wordpiece, "static"), _shard(tmp_path, wordpiece, "dynamic")
    with h5py.File(static, "r") as f, h5py.File(dynamic, "r") as g:
        assert f.attrs["masking_unit"] == "word" and g.attrs["masking_unit"] == "word"
        rows = np.concatenate([g["input_ids"][:]] * 2)  # the static file: copy after copy of the same rows
        masked, positions, labels = f["input_ids"][:], f["masked_lm_positions"][:], f["masked_lm_ids"][:]
    assert rows.shape == masked.shape
    predicted = np.zeros(rows.shape, dtype=bool)
    used = labels != 0
    predicted[np.nonzero(used)[0], positions[used].astype(int)] = True
    _check_whole_words(rows, masked, predicted, info, pieces)


def test_loader_draws_dynamic_masks_by_whole_words(tmp_path, wordpiece):
    from transformers import AutoTokenizer

    from pretraining.data.loader import IGNORE_INDEX, SampleStream
    from pretraining.data.shards import MaskingDefaults, Vocabulary, describe_dataset

    tokenizer_dir, info = wordpiece
    samples = tmp_path / "samples"
    samples.mkdir()
    _shard(samples, wordpiece, "dynamic").rename(samples / "train_shard_00000.hdf5")
    vocab = Vocabulary.from_tokenizer(AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    train, _ = describe_dataset(samples, vocab, MaskingDefaults(0.15, PREDICTIONS), 512)
    assert train[0].masking_unit == "word"
    stream = SampleStream(train, vocab, 60, 0, 1, seed=5, repeat=False, shuffle=False)
    with h5py.File(samples / "train_shard_00000.hdf5", "r") as f:
        rows = f["input_ids"][:].astype(np.int64)
    batches = list(stream)
    masked = np.concatenate([b["input_ids"].numpy() for b in batches])
    labels = np.concatenate([b["labels"].numpy() for b in batches])
    shares = _shares(_check_whole_words(rows, masked, labels != IGNORE_INDEX, info, _pieces(tokenizer_dir)))
    assert 0.72 < shares["mask"] < 0.88


def test_token_unit_output_and_file_attributes_are_as_before():
    rng = np.random.default_rng(7)
    ids = rng.integers(10, 500, size=(300, 40)).astype(np.uint16)
    ids[:, 0] = 2
    for i, k in enumerate(rng.integers(1, 38, size=300)):
        ids[i, 1 + k], ids[i, 2 + k:] = 3, 0
    out = mask_block(ids, np.random.default_rng(11), masked_lm_prob=0.15, max_predictions=6, pad_id=0, cls_id=2,
                     sep_id=3, mask_id=4, candidates=np.arange(10, 500))
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in out)).hexdigest()
    assert digest == "285bfe6b46627296ed3ce776be848940a2a0e411d1213fad533a9b8d39cc4523"  # made by the version before
    info = {"vocab_size": 9, "pad_id": 0, "cls_id": 2, "sep_id": 3, "mask_id": 4}
    assert "masking_unit" not in shard_attributes(SampleOptions(), info)


def test_flag_reaches_the_samples_script_and_a_vocabulary_without_pieces_is_refused(tmp_path, tiny_tokenizer):
    parser = generate_samples.build_parser()
    args = parser.parse_args(["--dir", "d", "-o", "o", "--masking_unit", "word"])
    assert sample_options(config_from_flags(args, generate_samples.SCRIPT)).masking_unit == "word"
    args = parser.parse_args(["--dir", "d", "-o", "o"])
    assert sample_options(config_from_flags(args, generate_samples.SCRIPT)).masking_unit == "token"
    check_word_pieces(tiny_tokenizer[0] / "tokenizer.json")  # the tiny vocabulary has ## pieces
    from tokenizers import Tokenizer, models

    bpe = tmp_path / "tokenizer.json"
    Tokenizer(models.WordLevel({"[UNK]": 0, "Ġthe": 1, "cat": 2}, unk_token="[UNK]")).save(str(bpe))
    with pytest.raises(ConfigError, match=r"^DATASET.MASKING_UNIT \(--masking_unit\) word needs a WordPiece"):
        check_word_pieces(bpe)
