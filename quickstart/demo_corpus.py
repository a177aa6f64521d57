"""A real English corpus that needs no download: the docstrings of the installed Python code (tens of megabytes of
hand-written English on every machine), read with ``ast`` (nothing is imported or executed), one article per module
file, keeping the paragraphs that read as prose.

A paragraph (a block of a docstring between blank lines) is kept when ``prose_paragraph`` finds prose in it and it
was not seen before anywhere in the corpus. Collection takes the top-level modules/packages round-robin until the
target size is reached; the order is sorted everywhere, so the same installed packages give the same articles.
"""
import ast
import hashlib
import itertools
import multiprocessing
import os
import re
import sys
import sysconfig
import warnings
from dataclasses import dataclass, field
from pathlib import Path

MIN_PARAGRAPH_WORDS = 8
MIN_PROSE_WORD_SHARE = 0.8
MAX_NON_ASCII_SHARE = 0.02
MIN_ARTICLE_WORDS = 30
# Generated files (lookup tables, vendored bundles) are large and hold no prose; skipping them keeps parsing fast.
MAX_SOURCE_FILE_BYTES = 1_000_000
SKIPPED_DIRS = frozenset({"test", "tests", "testing", "idle_test", "__pycache__", "site-packages",
                          "dist-packages", "_vendor", "vendor", "vendored", "examples", "benchmarks"})

_DOC_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_UNDERLINE = re.compile(r"^([-=~^*#\"'+`:.])\1{2,}\s*$")
_BLOCK_LINE_START = re.compile(r"^(>>>|\.\.\.|\.\.|:[\w ]+:|[-*+•|#]\s|\d+[.)]\s|[A-Za-z_][\w.]*\s*:\s*$|@)")
_ROLE = re.compile(r":[\w:.-]+:`~?([^`<]*?)(?:\s*<[^`>]*>)?`")
_LITERAL = re.compile(r"``([^`]+)``|`([^`]+)`_{0,2}")
_EMPHASIS = re.compile(r"\*{1,2}([^*\s][^*]*?)\*{1,2}")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_PROSE_WORD = re.compile(r"^[(\"']?[A-Za-z][a-z]*(?:[-'][A-Za-z][a-z]*)*[)\"']?[,.;:!?]?[)\"']?$")
_BOILERPLATE = re.compile(r"licen[cs]e|copyright|warrant|all rights reserved|redistribut|permission is hereby"
                          r"|spdx|apache|\bgpl\b|\bmit\b", re.IGNORECASE)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[\"'(]?[A-Z])")
_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|cf|al|Mr|Mrs|Dr|No|Fig|approx|resp|Eq|Sec)|\b[A-Za-z])\.$")


@dataclass
class Article:
    """The prose of one module file: ``source`` is its path relative to its root (for provenance only)."""
    source: str
    paragraphs: list = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.paragraphs)

    def num_words(self) -> int:
        return sum(len(p.split()) for p in self.paragraphs)


def default_source_roots() -> list:
    """The standard library folder and the installed-package folders of the running interpreter, deduplicated."""
    roots = {}
    for key in ("stdlib", "purelib", "platlib"):
        root = Path(sysconfig.get_paths()[key])
        if root.is_dir():
            roots.setdefault(root.resolve(), root)
    return list(roots.values())


def sources_fingerprint(roots) -> str:
    """A cheap hash of what the corpus is read from: Python version, roots and installed distributions (names
    carry versions), so installing or upgrading a package changes it without reading any source file."""
    digest = hashlib.sha256(sys.version.encode())
    for root in roots:
        digest.update(str(root).encode())
        try:
            names = sorted(n for n in os.listdir(root) if n.endswith((".dist-info", ".egg-info")))
        except OSError:
            names = []
        digest.update("\n".join(names).encode())
    return digest.hexdigest()[:16]


def _python_files(top: Path) -> list:
    if top.is_file():
        return [top]
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith("."))
        found.extend(Path(dirpath) / name for name in sorted(filenames)
                     if name.endswith(".py") and not name.startswith("test_"))
    return found


def _parseable_size(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size <= MAX_SOURCE_FILE_BYTES
    except OSError:  # a broken link or an unreadable file holds no corpus text
        return False


def source_units(roots) -> list:
    """``[(unit_name, root, [files])]``: one unit per top-level module or package under each root, sorted by name."""
    units = []
    for root in roots:
        for entry in sorted(os.listdir(root)):
            path = root / entry
            is_module = entry.endswith(".py") and path.is_file()
            is_package = path.is_dir() and entry.isidentifier() and entry not in SKIPPED_DIRS
            if not (is_module or is_package):
                continue
            files = [f for f in _python_files(path) if _parseable_size(f)]
            if files:
                units.append((entry, root, files))
    return units


def prose_paragraph(block: str):
    """The block as one normalised line of prose, or None when it is code, markup, boilerplate or a fragment: a line
    indented, underlined, a bullet, a doctest or a directive; after stripping inline markup, fewer than
    ``MIN_PARAGRAPH_WORDS`` words or too few plain ones, no sentence ending, non-ASCII, a URL or license text."""
    if any(line[:1].isspace() or _UNDERLINE.match(line) or _BLOCK_LINE_START.match(line) for line in block.split("\n")):
        return None
    text = _LITERAL.sub(lambda m: m.group(1) or m.group(2), _ROLE.sub(r"\1", block))
    text = _MD_LINK.sub(r"\1", _EMPHASIS.sub(r"\1", text)).replace("::", ":")
    text = " ".join(text.split())
    words = text.split()
    if len(words) < MIN_PARAGRAPH_WORDS or not text[0].isupper() or text[-1] not in ".!?":
        return None
    if "://" in text or _BOILERPLATE.search(text):
        return None
    if sum(1 for ch in text if ord(ch) > 127) > MAX_NON_ASCII_SHARE * len(text):
        return None
    if sum(1 for w in words if _PROSE_WORD.match(w)) < MIN_PROSE_WORD_SHARE * len(words):
        return None
    return text


def _docstrings_in_source_order(tree):
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, _DOC_NODES):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield doc
        # Only classes and functions nested in classes/functions/modules carry docstrings; reversed keeps order.
        children = [c for c in ast.iter_child_nodes(node) if isinstance(c, _DOC_NODES[1:])]
        stack.extend(reversed(children))


def docstring_paragraphs(source: bytes) -> list:
    """The prose paragraphs of every module/class/function docstring of ``source``, in source order."""
    if b'"""' not in source and b"'''" not in source:  # no multi-line string: nothing worth parsing for
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences etc. in third-party code are not our concern
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return []
    paragraphs = []
    for doc in _docstrings_in_source_order(tree):
        for block in re.split(r"\n\s*\n", doc.strip()):
            text = prose_paragraph(block.strip("\n"))
            if text is not None:
                paragraphs.append(text)
    return paragraphs


def _file_paragraphs(path) -> list:
    try:
        return docstring_paragraphs(Path(path).read_bytes())
    except OSError:
        return []


def _round_robin(units):
    """``(root, file)`` pairs taking one file from each unit in turn: a small target still spans many libraries."""
    for turn in itertools.zip_longest(*[[(root, path) for path in files] for _name, root, files in units]):
        yield from filter(None, turn)


def collect_articles(target_bytes: int, roots=None, workers: int = 1) -> list:
    """Articles (one per module file with enough prose) until their UTF-8 text reaches ``target_bytes``. Files are
    parsed by ``workers`` processes but consumed in a fixed order, so the result does not depend on ``workers``."""
    roots = [Path(r) for r in (roots if roots is not None else default_source_roots())]
    order = list(_round_robin(source_units(roots)))
    seen = set()
    articles = []
    total = 0
    pool = multiprocessing.Pool(workers) if workers > 1 else None
    try:
        paths = [str(path) for _root, path in order]
        results = pool.imap(_file_paragraphs, paths, chunksize=16) if pool else map(_file_paragraphs, paths)
        for (root, path), paragraphs in zip(order, results):
            article = Article(str(path.relative_to(root)))
            for paragraph in paragraphs:
                key = paragraph.lower()
                if key not in seen:
                    seen.add(key)
                    article.paragraphs.append(paragraph)
            if article.num_words() >= MIN_ARTICLE_WORDS:
                articles.append(article)
                total += len(article.text().encode("utf-8")) + 2  # + the article's newline and blank line
                if total >= target_bytes:
                    break
    finally:
        if pool is not None:
            pool.terminate()  # the parsing of files beyond the target is not needed
            pool.join()
    return articles


def split_sentences(paragraph: str) -> list:
    """Sentences of one paragraph: break after . ! ? before a capital, except after abbreviations and initials."""
    pieces = _SENTENCE_BREAK.split(paragraph)
    sentences = []
    for piece in pieces:
        if sentences and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences


def write_corpus(articles, corpus_dir, file_bytes: int = 1_000_000) -> list:
    """Write ``articles`` in the customized-dataset format into the new folder ``corpus_dir``, a new
    ``corpus_NNNNN.txt`` started once the current one holds ``file_bytes``; returns the file names in order."""
    corpus_dir = Path(corpus_dir)
    corpus_dir.mkdir(parents=True)
    chunks, size = [[]], 0
    for article in articles:
        block = article.text() + "\n\n"
        chunks[-1].append(block)
        size += len(block.encode("utf-8"))
        if size >= file_bytes:
            chunks.append([])
            size = 0
    names = [f"corpus_{i:05d}.txt" for i, chunk in enumerate(chunks) if chunk]  # only the last one may be empty
    for name, chunk in zip(names, chunks):
        (corpus_dir / name).write_text("".join(chunk), encoding="utf-8", newline="\n")
    return names
