"""BERT's masked-LM corruption, vectorised over a block of samples.

Per sample: ``round(masked_lm_prob x text tokens)`` positions (at least 1, at most ``max_predictions_per_seq``)
are drawn uniformly among the text tokens (never [CLS], [SEP] or [PAD]). Of those, 80% become [MASK], 10% a random
ordinary token, 10% stay as they are. Positions are reported in increasing order, 0-padded, with the original
token ids as labels (0-padded). This is the static mode; the pretraining loader applies the same rules on the fly
in dynamic mode.
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


def mask_block(input_ids: np.ndarray, rng: np.random.Generator, *, masked_lm_prob: float, max_predictions: int,
               pad_id: int, cls_id: int, sep_id: int, mask_id: int, candidates: np.ndarray):
    """Mask a block ``[N, L]`` of token ids. Returns ``(masked_ids, positions [N, P], labels [N, P])``.

    ``rng`` is consumed in a fixed pattern for a given block shape, which keeps the output deterministic.
    """
    n, length = input_ids.shape
    p = max_predictions
    eligible = (input_ids != pad_id) & (input_ids != cls_id) & (input_ids != sep_id)
    eligible_count = eligible.sum(axis=1)
    wanted = np.rint(eligible_count * masked_lm_prob).astype(np.int64)
    count = np.minimum(np.minimum(np.maximum(wanted, 1), p), eligible_count)

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
