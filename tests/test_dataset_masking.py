"""BERT's masking rules on many samples: rates, never special tokens, labels are the original tokens."""
import numpy as np

from dataset.masking import mask_block, replacement_candidates

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
VOCAB = 500


def _block(rng, n=4000, length=64):
    """Rows ``[CLS] text [SEP] [PAD]...`` with random text lengths, ids from 10 upwards."""
    ids = np.zeros((n, length), dtype=np.uint16)
    lengths = rng.integers(1, length - 1, size=n)
    for i, k in enumerate(lengths):
        ids[i, 0] = CLS
        ids[i, 1:1 + k] = rng.integers(10, VOCAB, size=k)
        ids[i, 1 + k] = SEP
    return ids, lengths


def _mask(ids, seed=0, prob=0.15, max_predictions=20):
    candidates = np.arange(10, VOCAB)
    return mask_block(ids, np.random.default_rng(seed), masked_lm_prob=prob, max_predictions=max_predictions,
                      pad_id=PAD, cls_id=CLS, sep_id=SEP, mask_id=MASK, candidates=candidates)


def test_number_of_predictions_is_prob_times_text_tokens_capped():
    ids, lengths = _block(np.random.default_rng(1))
    _, positions, labels = _mask(ids)
    used = (labels != 0).sum(axis=1)
    expected = np.minimum(np.maximum(np.rint(lengths * 0.15), 1), 20)
    assert np.array_equal(used, expected)


def test_never_masks_cls_sep_or_pad_and_positions_are_sorted_and_unique():
    ids, _ = _block(np.random.default_rng(2))
    _, positions, labels = _mask(ids)
    used = labels != 0
    chosen = np.take_along_axis(ids, positions.astype(np.int64), axis=1)[used]
    assert not np.isin(chosen, [PAD, CLS, SEP]).any()
    for row, mask in zip(positions, used):
        p = row[mask]
        assert np.all(np.diff(p.astype(int)) > 0) and (row[~mask] == 0).all()


def test_labels_are_the_original_tokens_and_only_chosen_positions_change():
    ids, _ = _block(np.random.default_rng(3))
    masked, positions, labels = _mask(ids)
    used = labels != 0
    rows = np.nonzero(used)[0]
    assert np.array_equal(labels[used], ids[rows, positions[used]])
    restored = masked.copy()
    restored[rows, positions[used]] = labels[used]
    assert np.array_equal(restored, ids)


def test_eighty_ten_ten_split_and_random_tokens_are_ordinary_vocabulary():
    ids, _ = _block(np.random.default_rng(4))
    masked, positions, labels = _mask(ids)
    used = labels != 0
    rows = np.nonzero(used)[0]
    new, old = masked[rows, positions[used]], labels[used]
    total = len(new)
    as_mask = (new == MASK).mean()
    kept = (new == old).mean()
    randomised = ((new != MASK) & (new != old)).mean()
    assert total > 15000
    assert abs(as_mask - 0.8) < 0.015
    assert abs(kept + randomised - 0.2) < 0.015 and randomised > 0.085  # random draws can hit the original token
    replaced = new[(new != MASK) & (new != old)]
    assert replaced.min() >= 10


def test_overall_masked_fraction_is_masked_lm_prob_when_uncapped():
    ids, lengths = _block(np.random.default_rng(5), length=32)
    _, _, labels = _mask(ids, prob=0.15, max_predictions=30)
    assert abs((labels != 0).sum() / lengths.sum() - 0.15) < 0.01


def test_masking_is_deterministic_for_a_seed():
    ids, _ = _block(np.random.default_rng(6), n=200)
    first, second, other = _mask(ids, seed=9), _mask(ids, seed=9), _mask(ids, seed=10)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[0], other[0])


def test_replacement_candidates_skip_special_and_unused_tokens():
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[unused0]": 3, "<s>": 4, "hello": 5, "##lo": 6}
    assert replacement_candidates(vocab, [0, 1, 2]).tolist() == [5, 6]
