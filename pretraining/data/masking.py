"""MLM labels for a block of samples: read from static files, or drawn (BERT's 80/10/10 masking) for dynamic ones.

Both return ``(input_ids, labels)`` as int64 arrays ``[N, L]``; ``labels`` holds the original token at every
predicted position and -100 elsewhere (the ignore index of the model's loss).
"""
import numpy as np

from dataset.masking import mask_block

IGNORE_INDEX = -100


def static_labels(input_ids: np.ndarray, positions: np.ndarray, ids: np.ndarray) -> tuple:
    """Dense labels from ``masked_lm_positions``/``masked_lm_ids`` ([N, P], 0-padded: position 0 is [CLS] and is
    never predicted, so 0 marks padding). ``input_ids`` are already masked on disk."""
    input_ids = input_ids.astype(np.int64)
    labels = np.full(input_ids.shape, IGNORE_INDEX, dtype=np.int64)
    rows, slots = np.nonzero(positions > 0)
    labels[rows, positions[rows, slots].astype(np.int64)] = ids[rows, slots]
    return input_ids, labels


def dynamic_mask(input_ids: np.ndarray, rng: np.random.Generator, *, masked_lm_prob: float,
                 max_predictions_per_seq: int, pad_id: int, cls_id: int, sep_id: int, mask_id: int,
                 replacement_ids: np.ndarray) -> tuple:
    """BERT masking drawn now, by the very function the dataset stage uses for static files
    (``dataset.masking.mask_block``: the same selection and 80/10/10 rules in both modes), as dense labels."""
    masked, positions, ids = mask_block(input_ids.astype(np.int64), rng, masked_lm_prob=masked_lm_prob,
                                        max_predictions=max_predictions_per_seq, pad_id=pad_id, cls_id=cls_id,
                                        sep_id=sep_id, mask_id=mask_id, candidates=replacement_ids)
    return static_labels(masked, positions, ids)
