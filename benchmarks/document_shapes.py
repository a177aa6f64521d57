"""A corpus cut into documents of another length: the same text, with the article boundaries (blank lines) moved.

Short documents (a note, a ticket, a review) are what the packing of the dataset stage is for; Wikipedia articles
are long. ``SHAPES``: ``articles`` (the corpus as it is), ``paragraphs`` (each non-blank line a document),
``sentences`` (each sentence of a line a document). Used by ``bench_packing.py`` and ``bench_time_to_quality.py``.
"""
import re
from pathlib import Path

SHAPES = ("articles", "paragraphs", "sentences")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")  # a sentence end followed by a likely sentence start


def split_documents(lines: list, shape: str) -> list:
    """The corpus lines grouped into documents (lists of lines) of ``shape``."""
    if shape == "articles":
        documents, current = [], []
        for line in lines:
            if line.strip():
                current.append(line.strip())
            elif current:
                documents.append(current)
                current = []
        return documents + ([current] if current else [])
    paragraphs = [line.strip() for line in lines if line.strip()]
    if shape == "paragraphs":
        return [[paragraph] for paragraph in paragraphs]
    if shape == "sentences":
        return [[sentence] for paragraph in paragraphs for sentence in SENTENCE_END.split(paragraph) if sentence]
    raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")


def write_documents(path: Path, documents: list) -> None:
    """One corpus file: the documents' lines, a blank line after each document (the dataset stage's format)."""
    path.write_text("".join("\n".join(doc) + "\n\n" for doc in documents), encoding="utf-8")


def reshape_file(source: Path, target: Path, shape: str) -> int:
    """``target``: ``source`` cut into documents of ``shape`` (written under a temporary name, then renamed, so that
    a file that exists is complete); returns the number of documents."""
    documents = split_documents(source.read_text(encoding="utf-8").splitlines(), shape)
    partial = target.with_name(f".{target.name}.partial")
    write_documents(partial, documents)
    partial.replace(target)
    return len(documents)
