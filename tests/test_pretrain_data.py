"""The pretraining data path: masking, the rank/epoch order of the sample stream, resume, and bad-data errors."""
import h5py
import numpy as np
import pytest
import torch

from pipeline.errors import DataError
from pretraining.data.loader import IGNORE_INDEX, SampleStream, dynamic_mask, static_labels
from pretraining.data.shards import MaskingDefaults, Vocabulary, describe_dataset
from tests.pretrain_fixtures import (CLS, MASK, PAD, SEP, SPECIALS, UNUSED, make_dataset, write_dynamic, write_static,
                                     write_tokenizer, zipf_rows)


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    from transformers import AutoTokenizer

    folder = write_tokenizer(tmp_path_factory.mktemp("tok"))
    return Vocabulary.from_tokenizer(AutoTokenizer.from_pretrained(str(folder)))


def describe(folder, vocab, limit=64):
    return describe_dataset(folder, vocab, MaskingDefaults(0.15, 8), limit)


def collect(stream, batches):
    out = []
    for i, batch in enumerate(stream):
        if i == batches:
            break
        out.append(batch)
    return out


def mask(vocab, rows, seed, prob=0.15, cap=20):
    return dynamic_mask(rows, np.random.default_rng(seed), masked_lm_prob=prob, max_predictions_per_seq=cap,
                        pad_id=PAD, cls_id=CLS, sep_id=SEP, mask_id=MASK, replacement_ids=vocab.replacement_ids())


def test_random_replacements_are_real_words_only(vocab):
    replacements = vocab.replacement_ids()
    assert replacements.min() == len(SPECIALS) and replacements.max() == vocab.size - 1
    assert UNUSED not in replacements


def test_dynamic_masking_never_selects_special_tokens_and_respects_the_cap(vocab):
    rows = zipf_rows(500, 64, seed=3)
    masked, labels = mask(vocab, rows, 0, prob=0.3, cap=10)
    selected = labels != IGNORE_INDEX
    assert not np.isin(rows[selected], [PAD, CLS, SEP, MASK, UNUSED]).any()
    assert (masked[~selected] == rows[~selected]).all()
    assert (labels[selected] == rows[selected]).all()
    words = (rows >= len(SPECIALS)).sum(1)
    assert (selected.sum(1) == np.minimum(10, np.maximum(1, np.rint(0.3 * words)))).all()


def test_dynamic_masking_splits_80_10_10_with_real_random_replacements(vocab):
    rows = zipf_rows(4000, 64, seed=4)
    masked, labels = mask(vocab, rows, 1)
    selected = labels != IGNORE_INDEX
    became_mask = (masked == MASK) & selected
    changed = (masked != rows) & selected & ~became_mask
    n = selected.sum()
    assert became_mask.sum() / n == pytest.approx(0.8, abs=0.02)
    # 10% random replacements; a random id equal to the original counts as "kept" (probability ~1/40 x Zipf).
    assert changed.sum() / n == pytest.approx(0.1, abs=0.02)
    assert np.isin(masked[changed], vocab.replacement_ids()).all()


def test_dynamic_masking_is_a_function_of_the_seed(vocab):
    rows = zipf_rows(50, 32, seed=5)
    a, b, c = mask(vocab, rows, [1, 2]), mask(vocab, rows, [1, 2]), mask(vocab, rows, [1, 3])
    assert all((x == y).all() for x, y in zip(a, b)) and not (a[1] == c[1]).all()


def test_static_labels_put_the_original_ids_at_the_listed_positions_and_ignore_padding():
    input_ids = np.array([[CLS, MASK, 9, MASK, SEP, PAD]])
    positions = np.array([[1, 3, 0, 0]])
    ids = np.array([[7, 8, 0, 0]])
    _, labels = static_labels(input_ids, positions, ids)
    assert labels.tolist() == [[IGNORE_INDEX, 7, IGNORE_INDEX, 8, IGNORE_INDEX, IGNORE_INDEX]]


def test_static_stream_yields_the_files_masks_and_labels(tmp_path, vocab):
    write_static(tmp_path / "train_0.hdf5", num_samples=16, seq_length=16, seed=0)
    train, _ = describe(tmp_path, vocab)
    assert train[0].static
    batch = next(iter(SampleStream(train, vocab, 16, 0, 1, seed=0, shuffle=False)))
    with h5py.File(tmp_path / "train_0.hdf5") as f:
        assert (batch["input_ids"].numpy() == f["input_ids"][:]).all()
        assert (batch["attention_mask"].numpy() == f["input_mask"][:].astype(bool)).all()
        rows, cols = np.nonzero(f["masked_lm_positions"][:])
        assert (batch["labels"].numpy()[rows, f["masked_lm_positions"][:][rows, cols]] ==
                f["masked_lm_ids"][:][rows, cols]).all()
    assert batch["num_predictions"] == int((batch["labels"] != IGNORE_INDEX).sum())


def test_legacy_int32_static_files_without_attributes_load(tmp_path, vocab):
    make_dataset(tmp_path, kind="legacy", train_files=1, test_files=1, samples=12, seq_length=16)
    train, test = describe(tmp_path, vocab)
    assert train[0].static and train[0].has_segment_ids and len(test) == 1
    batch = next(iter(SampleStream(train, vocab, 4, 0, 1, seed=0)))
    assert batch["input_ids"].dtype.is_floating_point is False and batch["token_type_ids"] is not None
    assert batch["num_predictions"] > 0


def _row_keys(batches):
    return [bytes(row) for batch in batches for row in batch["input_ids"].numpy().astype(np.int64)]


@pytest.mark.parametrize("kind", ["dynamic", "static", "packed"])
def test_ranks_split_each_global_batch_of_the_one_stream_that_one_process_reads(tmp_path, vocab, kind):
    """The data-order rule: rank r of W takes samples [r*B/W, (r+1)*B/W) of each global batch B of one global
    stream, masks included, so any split of the same global batch trains on the same samples."""
    make_dataset(tmp_path, kind=kind, train_files=3, test_files=0, samples=10, seq_length=16)
    train, _ = describe(tmp_path, vocab)
    batch_size = 8

    def samples(stream, count):
        batches = collect(stream, count // stream.micro_batch_size)
        return [{k: b[k][i] for k in ("input_ids", "labels")} for b in batches for i in range(len(b["input_ids"]))]

    one = samples(SampleStream(train, vocab, 8, 0, 1, seed=3), 80)  # 80 samples: 2.7 epochs of 30
    for world_size, micro in ((2, 4), (2, 2), (4, 2)):
        share = batch_size // world_size
        ranks = [samples(SampleStream(train, vocab, micro, r, world_size, seed=3, rank_share=share), 80 // world_size)
                 for r in range(world_size)]
        merged = [sample for k in range(0, 80 // world_size, share) for rank in ranks for sample in rank[k:k + share]]
        assert len(merged) == len(one)
        for a, b in zip(one, merged):
            assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])


def test_validation_reads_the_same_capped_samples_with_any_number_of_ranks(tmp_path, vocab):
    make_dataset(tmp_path, kind="dynamic", train_files=1, test_files=2, samples=7, seq_length=16)
    _, test = describe(tmp_path, vocab)

    def rows(rank, world_size):
        stream = SampleStream(test, vocab, 4, rank, world_size, seed=0, shuffle=False, repeat=False, max_samples=11)
        return _row_keys(list(stream))

    one = rows(0, 1)
    assert len(one) == 11
    assert sorted(rows(0, 2) + rows(1, 2)) == sorted(one)
    assert sorted(rows(0, 3) + rows(1, 3) + rows(2, 3)) == sorted(one)


def test_epochs_are_reshuffled_and_the_order_depends_only_on_the_seed(tmp_path, vocab):
    make_dataset(tmp_path, kind="dynamic", train_files=3, test_files=0, samples=8, seq_length=16)
    train, _ = describe(tmp_path, vocab)
    first = _row_keys(collect(SampleStream(train, vocab, 4, 0, 1, seed=5), 12))  # two epochs of 24 samples
    again = _row_keys(collect(SampleStream(train, vocab, 4, 0, 1, seed=5), 12))
    other = _row_keys(collect(SampleStream(train, vocab, 4, 0, 1, seed=6), 12))
    assert first == again and first != other
    assert first[:24] != first[24:]


@pytest.mark.parametrize("kind", ["dynamic", "static", "packed"])
def test_a_resumed_stream_continues_exactly_where_the_original_was(tmp_path, vocab, kind, monkeypatch):
    monkeypatch.setattr("pretraining.data.loader.BLOCK_ROWS", 5)  # resume points inside a masking block too
    make_dataset(tmp_path, kind=kind, train_files=3, test_files=0, samples=12, seq_length=16)
    train, _ = describe(tmp_path, vocab)
    full = collect(SampleStream(train, vocab, 3, 0, 1, seed=9), 30)  # 90 samples: 2.5 epochs of 36
    for start_batch in (1, 4, 13, 17):
        resumed = collect(SampleStream(train, vocab, 3, 0, 1, seed=9, start_sample=3 * start_batch), 30 - start_batch)
        for a, b in zip(full[start_batch:], resumed):
            assert all((a[k] == b[k]).all() for k in ("input_ids", "labels", "attention_mask"))


def test_validation_stream_reads_one_pass_capped_and_keeps_the_short_last_batch(tmp_path, vocab):
    write_dynamic(tmp_path / "train_0.hdf5", num_samples=8, seq_length=16)
    write_dynamic(tmp_path / "test_0.hdf5", num_samples=10, seq_length=16, seed=1)
    _, test = describe(tmp_path, vocab)
    sizes = [len(b["input_ids"]) for b in SampleStream(test, vocab, 4, 0, 1, seed=0, shuffle=False, repeat=False)]
    assert sizes == [4, 4, 2]
    capped = [len(b["input_ids"]) for b in SampleStream(test, vocab, 4, 0, 1, seed=0, shuffle=False, repeat=False,
                                                         max_samples=6)]
    assert capped == [4, 2]


def test_empty_or_missing_dataset_path_is_a_one_line_error(tmp_path, vocab):
    for path in ("", tmp_path / "missing", tmp_path):
        with pytest.raises(DataError) as e:
            describe(path, vocab)
        assert "\n" not in str(e.value)
    (tmp_path / "test_0.hdf5").touch()
    with pytest.raises(DataError, match="no training files"):
        describe(tmp_path, vocab)


def test_data_made_with_another_vocabulary_is_rejected_before_training(tmp_path, vocab):
    write_dynamic(tmp_path / "train_0.hdf5", vocab_size=30522)
    with pytest.raises(DataError, match="vocabulary of 30522 tokens but the tokenizer has 46"):
        describe(tmp_path, vocab)


def test_a_packing_this_version_does_not_know_is_refused_and_a_file_without_one_reads_as_document(tmp_path, vocab):
    path = write_dynamic(tmp_path / "train_0.hdf5")
    assert describe(tmp_path, vocab)[0][0].num_samples > 0  # no packing attribute: rows as before
    with h5py.File(path, "r+") as f:
        f.attrs["packing"] = "document_masked"
    with pytest.raises(DataError, match=r"packing is 'document_masked', expected one of document, full_sentences;"
                                        r" regenerate the samples"):
        describe(tmp_path, vocab)


def test_legacy_data_with_ids_beyond_the_tokenizer_is_rejected_before_training(tmp_path, vocab):
    path = write_static(tmp_path / "train_0.hdf5", legacy=True)
    with h5py.File(path, "r+") as f:
        ids = f["input_ids"][:]
        ids[0, 1] = 2000
        f["input_ids"][:] = ids
    with pytest.raises(DataError, match="holds id 2000 but the tokenizer has 46 tokens"):
        describe(tmp_path, vocab)


def test_files_of_different_lengths_or_longer_than_the_positions_are_rejected(tmp_path, vocab):
    write_dynamic(tmp_path / "train_0.hdf5", seq_length=16)
    write_dynamic(tmp_path / "train_1.hdf5", seq_length=32)
    with pytest.raises(DataError, match="different sequence lengths"):
        describe(tmp_path, vocab)
    (tmp_path / "train_0.hdf5").unlink()
    with pytest.raises(DataError, match="position embeddings"):
        describe(tmp_path, vocab, limit=16)
