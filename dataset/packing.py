"""Turn a text shard into fixed-length token sequences ``[CLS] tokens [SEP] [PAD]...``, one article per row
(``document``) or the articles as one ``[SEP]``-separated stream (``full_sentences``): docs/interfaces.md.

An article's lines are tokenized one by one and their tokens concatenated, the same as joining the lines with a
space for a BERT pre-tokenizer (it splits on whitespace). Text is tokenized in batches of about ``batch_chars``
characters; the unfinished article is carried over from one batch to the next, so the rows do not depend on it.
"""
import numpy as np

PACKINGS = ("document", "full_sentences")


def iter_line_batches(path, batch_chars: int):
    """``(lines, starts)`` batches of a text shard: non-blank lines, and whether each one begins an article."""
    lines, starts, size = [], [], 0
    new_article = True
    with open(path, encoding="utf-8", newline="\n") as f:
        for line in f:
            line = line.strip()
            if not line:
                new_article = True
                continue
            lines.append(line)
            starts.append(new_article)
            new_article = False
            size += len(line)
            if size >= batch_chars:
                yield lines, starts
                lines, starts, size = [], [], 0
    if lines:
        yield lines, starts


class SequencePacker:
    """Cuts the articles' token streams into rows of ``max_seq_length`` (ids of dtype ``dtype``) by ``packing``."""

    def __init__(self, max_seq_length: int, cls_id: int, sep_id: int, pad_id: int, dtype, packing: str):
        if packing not in PACKINGS:
            raise ValueError(f"packing must be one of {PACKINGS}, got {packing!r}")
        self.across_documents = packing == "full_sentences"
        self.length = max_seq_length
        self.body = max_seq_length - 2
        self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, pad_id
        self.dtype = dtype
        self.carry = np.zeros(0, dtype=dtype)  # tokens not yet in a row (< body tokens)

    def _rows(self, tokens: np.ndarray, final: bool) -> np.ndarray:
        """Rows for the full ``body``-sized pieces of ``tokens`` (and the tail when ``final``); keeps the rest."""
        full = len(tokens) // self.body
        tail = tokens[full * self.body:]
        emit_tail = final and len(tail) > 0
        rows = np.full((full + emit_tail, self.length), self.pad_id, dtype=self.dtype)
        rows[:, 0] = self.cls_id
        rows[:full, 1:-1] = tokens[:full * self.body].reshape(full, self.body)
        rows[:full, -1] = self.sep_id
        if emit_tail:
            rows[full, 1:1 + len(tail)] = tail
            rows[full, 1 + len(tail)] = self.sep_id
            tail = tail[:0]
        self.carry = tail.copy()
        return rows

    def add_batch(self, token_lists, starts) -> np.ndarray:
        """Rows completed by one batch of lines (``token_lists``: the ids of each line)."""
        lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
        flat = np.fromiter((i for ids in token_lists for i in ids), dtype=self.dtype, count=int(lengths.sum()))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        article_starts = [i for i, s in enumerate(starts) if s]
        out = []
        segment_begin = 0
        for piece, line_index in enumerate(article_starts + [len(token_lists)]):
            # Tokens from ``segment_begin`` to this line belong to the current (carried) article.
            segment = flat[offsets[segment_begin]:offsets[line_index]]
            if self.across_documents:
                # Every piece but the first begins an article: a [SEP] parts it from the text before, if any.
                separator = [self.sep_id] if piece > 0 and len(self.carry) else []
                stream = np.concatenate([self.carry, np.array(separator, dtype=self.dtype), segment])
                out.append(self._rows(stream, final=False))
            else:
                article_ends = line_index < len(token_lists)
                out.append(self._rows(np.concatenate([self.carry, segment]), final=article_ends))
            segment_begin = line_index
        return np.concatenate(out) if out else np.zeros((0, self.length), dtype=self.dtype)

    def finish(self) -> np.ndarray:
        """The padded tail of the last article (of the stream, with ``full_sentences``)."""
        return self._rows(self.carry, final=True)
