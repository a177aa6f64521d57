"""BERT's masked-LM corruption, vectorised over a block of samples (static masking; the pretraining loader applies
the same rules on the fly for dynamic masking).

Per sample, ``round(masked_lm_prob x text tokens)`` positions (at least 1, at most ``max_predictions_per_seq``) are
drawn among the text tokens (never [CLS], [SEP] or [PAD]): 80% become [MASK], 10% a random ordinary token, 10% stay.
With ``continuation`` (the ids of WordPiece ``##`` pieces) the unit is the *word*, as in BERT-wwm: words are taken
whole in a random order while the masked *tokens* stay within the same budget (a word that would overshoot it is
skipped, smaller ones after it may still fit), and the 80/10/10 choice is drawn once per word.
"""
import re

import numpy as np

# Tokens that look like markup ([unused0], <s>, [CLS]) are never used as random replacements.
_MARKUP_TOKEN = re.compile(r"^(\[.*\]|<.*>)$")


def replacement_candidates(vocab: dict, special_ids) -> np.ndarray:
    """Ids a masked position may be replaced with at random: real vocabulary tokens, no special or unused ones."""
    special = set(special_ids)
    ids = [i for token, i in vocab.items() if i not in special and not _MARKUP_TOKEN.match(token)]
    if not ids:
        raise ValueError("the vocabulary has no ordinary tokens to draw random replacements from")
    return np.array(sorted(ids), dtype=np.int64)


MASKING_UNITS = ("token", "word")
CONTINUATION_PREFIX = "##"  # WordPiece's mark of a piece that continues the word before it


def continuation_ids(vocab: dict) -> np.ndarray:
    """Ids of the vocabulary's ``##`` continuation pieces (empty for a vocabulary without them, e.g. byte-level
    BPE, where whole-word masking is refused rather than guessed)."""
    ids = [i for token, i in vocab.items() if token.startswith(CONTINUATION_PREFIX) and len(token) > 2]
    return np.array(sorted(ids), dtype=np.int64)


def mask_block(input_ids: np.ndarray, rng: np.random.Generator, *, masked_lm_prob: float, max_predictions: int,
               pad_id: int, cls_id: int, sep_id: int, mask_id: int, candidates: np.ndarray,
               continuation: np.ndarray = None):
    """Mask a block ``[N, L]`` of token ids into ``(masked_ids, positions [N, P], labels [N, P])``, by whole words
    with ``continuation``; ``rng`` is consumed in a fixed pattern for a given block shape (a deterministic output)."""
    n, length = input_ids.shape
    p = max_predictions
    eligible = (input_ids != pad_id) & (input_ids != cls_id) & (input_ids != sep_id)
    eligible_count = eligible.sum(axis=1)
    wanted = np.rint(eligible_count * masked_lm_prob).astype(np.int64)
    count = np.minimum(np.clip(wanted, 1, p), eligible_count)  # tokens to mask per row
    if continuation is not None:
        return _mask_words(input_ids, rng, eligible, count, p, mask_id, candidates, continuation)

    keys = rng.random((n, length))
    keys[~eligible] = 2.0  # ineligible positions sort after every eligible one
    chosen = np.argpartition(keys, min(p, length) - 1, axis=1)[:, :p]
    # The first ``count`` of the chosen positions by key are a uniform sample without replacement.
    order = np.argsort(np.take_along_axis(keys, chosen, axis=1), axis=1)
    chosen = np.take_along_axis(chosen, order, axis=1)
    used = np.arange(p)[None, :] < count[:, None]
    positions = np.sort(np.where(used, chosen, length), axis=1)  # unused slots sort last
    used = positions < length
    positions = np.where(used, positions, 0)

    labels = np.where(used, np.take_along_axis(input_ids, positions, axis=1), 0)
    action = rng.random((n, p))
    random_tokens = candidates[rng.integers(0, len(candidates), size=(n, p))]
    replacement = np.where(action < 0.8, mask_id, np.where(action < 0.9, random_tokens, labels))
    masked = input_ids.copy()
    rows = np.nonzero(used)[0]
    masked[rows, positions[used]] = replacement[used]
    return masked, positions.astype(np.uint16), labels.astype(input_ids.dtype)


def _mask_words(input_ids, rng, eligible, count, p, mask_id, candidates, continuation):
    """Whole-word masking of a block (see the module docstring); same outputs as ``mask_block``."""
    n, length = input_ids.shape
    follows_text = np.zeros_like(eligible)
    follows_text[:, 1:] = eligible[:, :-1]
    # A ## piece right after [CLS]/[SEP] starts a word of its own: words never cross a separator.
    starts = eligible & ~(follows_text & np.isin(input_ids, continuation))
    word = np.where(eligible, np.cumsum(starts, axis=1) - 1, 0)  # each text token's word slot in its row
    slot = np.where(eligible, np.arange(n)[:, None] * length + word, n * length)
    word_len = np.bincount(slot.ravel(), minlength=n * length + 1)[:n * length].reshape(n, length)

    keys = rng.random((n, length))
    keys[word_len == 0] = 2.0  # empty slots sort after every word
    order = np.argsort(keys, axis=1, kind="stable")
    len_in_order = np.take_along_axis(word_len, order, axis=1)
    taken_in_order = np.zeros((n, length), dtype=bool)
    total = np.zeros(n, dtype=np.int64)
    for k in range(int(starts.sum(axis=1).max(initial=0))):  # BERT-wwm's greedy pass, all rows at once
        fits = (len_in_order[:, k] > 0) & (total + len_in_order[:, k] <= count)
        taken_in_order[:, k] = fits
        total += np.where(fits, len_in_order[:, k], 0)
    taken = np.zeros((n, length), dtype=bool)
    np.put_along_axis(taken, order, taken_in_order, axis=1)
    selected = eligible & np.take_along_axis(taken, word, axis=1)

    action = np.take_along_axis(rng.random((n, length)), word, axis=1)  # one draw per word, shared by its pieces
    random_tokens = candidates[rng.integers(0, len(candidates), size=(n, length))]
    replacement = np.where(action < 0.8, mask_id, np.where(action < 0.9, random_tokens, input_ids))
    masked = np.where(selected, replacement, input_ids).astype(input_ids.dtype)

    ordered = np.sort(np.where(selected, np.arange(length)[None, :], length), axis=1)
    positions = np.full((n, p), length, dtype=np.int64)
    positions[:, :min(p, length)] = ordered[:, :p]  # at most ``count`` <= p positions are selected
    used = positions < length
    positions = np.where(used, positions, 0)
    labels = np.where(used, np.take_along_axis(input_ids, positions, axis=1), 0)
    return masked, positions.astype(np.uint16), labels.astype(input_ids.dtype)
