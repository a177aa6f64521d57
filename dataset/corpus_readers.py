"""Read raw corpora as a stream of articles (each a list of non-blank lines), in a fixed order.

A ``custom`` source is every ``.txt`` under a folder, sorted by relative path (not the filesystem's order); blank
lines and each file's end end an article; files are read as bytes so that a decoding error can name its offset. A
``hub`` source (``dataset.hub_entries``) is streamed with ``datasets``, one record per article (the ``text``
builder: one line per record, empty records between articles); local data files take the same path.
Memory stays bounded whatever the input: lines over ``MAX_LINE_BYTES`` are cut (at whitespace when there is some),
and articles over ``MAX_ARTICLE_CHARS`` split. Both are constants, so the output never depends on the memory cap.
"""
import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from pipeline.errors import DataError, first_line

from dataset.hub_entries import HubEntry

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 1 << 20
MAX_ARTICLE_CHARS = 8 << 20
_BOM = b"\xef\xbb\xbf"
REPLACEMENT_CHARACTER = "\ufffd"  # what ENCODING_ERRORS replace puts in place of each byte that is not UTF-8
SUSPICIOUS_REPLACED_FRACTION = 0.01


@dataclass(frozen=True)
class CorpusSource:
    """One input: ``kind`` is "custom" (``name`` = folder) or "hub" (the other fields are its HubEntry's)."""
    kind: str
    name: str
    subset: str = ""
    text_column: str = "text"
    split: str = "train"
    revision: str = ""

    def hub_entry(self) -> HubEntry:
        return HubEntry(**{f.name: getattr(self, f.name) for f in fields(HubEntry)})

    def describe(self) -> str:
        return self.name if self.kind == "custom" else self.hub_entry().describe()


def sources_from_lists(custom_folders, hub_entries) -> list:
    """Sources in a fixed order: hub datasets first (as listed), then custom folders (as listed).
    A malformed hub entry raises ConfigError (the config check reports it earlier, naming the key)."""
    sources = [CorpusSource("hub", **asdict(HubEntry.parse(entry))) for entry in hub_entries]
    sources.extend(CorpusSource("custom", str(folder)) for folder in custom_folders)
    return sources


def list_corpus_files(folder) -> list:
    """Every ``.txt`` under ``folder``, sorted by relative path: the one rule of what a corpus folder holds, used by
    the config check (``dataset.stage.validate_config``) and the reader alike. DataError when there are none, or
    when a ``.txt`` is a symbolic link to nothing: skipping it would drop part of the corpus without a word."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"corpus folder does not exist or is not a folder: {root}")
    candidates = sorted(root.rglob("*.txt"), key=lambda p: p.relative_to(root).as_posix())
    broken = [p for p in candidates if p.is_symlink() and not p.exists()]
    if broken:
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        raise DataError(f"{broken[0]} in corpus folder {root} is a broken symbolic link (to {os.readlink(broken[0])})"
                        f"{more}: fix or remove it")
    files = [p for p in candidates if p.is_file()]
    if not files:
        what = "is empty" if not any(root.iterdir()) else "holds no .txt files"
        raise DataError(f"corpus folder {root} {what}: put the corpus there as .txt files (articles separated by"
                        f" blank lines)")
    return files


def _utf8_safe_cut(data: bytes) -> int:
    """Length of the longest prefix of ``data`` that does not end inside a multi-byte UTF-8 character."""
    end = len(data)
    back = 0
    while back < 3 and end - back > 0 and (data[end - back - 1] & 0xC0) == 0x80:
        back += 1
    if end - back == 0:
        return end
    lead = data[end - back - 1]
    needed = 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4 if lead >> 3 == 0b11110 else 1
    return end if needed == back + 1 else end - back - 1


def iter_file_lines(path, encoding_errors: str = "strict", stats: dict = None):
    """Decoded lines of one file (line endings removed, surrounding whitespace stripped; blank lines yield "").
    ``stats["bytes_read"]`` grows by each line's bytes as it is read (the sharding progress bar counts them)."""
    stats = {} if stats is None else stats
    offset = 0  # byte offset in the file of the first byte of ``pending``
    pending = b""
    chars = replaced = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.readline(MAX_LINE_BYTES)
            if not chunk and not pending:
                break
            stats["bytes_read"] = stats.get("bytes_read", 0) + len(chunk)
            data = pending + chunk
            if offset == 0 and data.startswith(_BOM):
                data, offset = data[len(_BOM):], len(_BOM)
            if chunk and not chunk.endswith(b"\n") and len(chunk) == MAX_LINE_BYTES:
                # A line too long: cut after its last space/tab (ASCII bytes never occur inside a UTF-8 character),
                # else at a UTF-8 character boundary.
                cut = max(data.rfind(b" "), data.rfind(b"\t"))
                cut = cut + 1 if cut > len(data) // 2 else _utf8_safe_cut(data)
                data, pending = data[:cut], data[cut:]
            else:
                pending = b""
            try:
                text = data.decode("utf-8", errors=encoding_errors)
            except UnicodeDecodeError as e:
                raise DataError(f"{path} is not valid UTF-8 at byte offset {offset + e.start}: fix the file, or set"
                                f" DATASET.ENCODING_ERRORS (--encoding_errors) to replace or ignore") from None
            offset += len(data)
            chars += len(text)
            replaced += text.count(REPLACEMENT_CHARACTER)
            yield text.strip()
    # Under replace a few bad bytes are expected; many mean another encoding or binary data, tokenized into noise.
    if encoding_errors == "replace" and chars and replaced > SUSPICIOUS_REPLACED_FRACTION * chars:
        log.warning(f"{path}: {replaced:,} of {chars:,} characters ({100 * replaced / chars:.1f}%) are U+FFFD, bytes"
                    f" that are not UTF-8 (ENCODING_ERRORS replace): is it text in another encoding, or binary data?"
                    f" Convert it to UTF-8 or remove it")


def _articles_from_lines(lines, stats: dict):
    """Group lines into articles at blank lines, splitting articles longer than MAX_ARTICLE_CHARS."""
    article, size = [], 0
    for line in lines:
        if not line:
            if article:
                yield article
            article, size = [], 0
            continue
        if size + len(line) > MAX_ARTICLE_CHARS and article:
            stats["articles_split"] = stats.get("articles_split", 0) + 1
            yield article
            article, size = [], 0
        article.append(line)
        size += len(line) + 1
    if article:
        yield article


def iter_custom_articles(folder, encoding_errors: str = "strict", stats: dict = None):
    stats = {} if stats is None else stats
    for path in list_corpus_files(folder):
        yield from _articles_from_lines(iter_file_lines(path, encoding_errors, stats), stats)


def load_hub_stream(entry: HubEntry):
    """A streaming iterator over the entry's split (at its revision) of a hub dataset, a local folder of data
    files, or local files through a generic builder. Streaming keeps memory bounded whatever the dataset's size."""
    import datasets

    return datasets.load_dataset(**entry.dataset_arguments(), split=entry.split, streaming=True)


def _hub_lines(entry: HubEntry, stats: dict):
    """Each record's text as lines, with a blank line after every record (the ``text`` builder: after blank ones);
    ``stats["bytes_read"]`` grows by each text's UTF-8 bytes."""
    try:
        for record in load_hub_stream(entry):
            if entry.text_column not in record:
                raise DataError(f"hub dataset {entry.describe()} has no column '{entry.text_column}' (columns: "
                                f"{', '.join(record)}): give the text column as the third item")
            text = record[entry.text_column] or ""
            stats["bytes_read"] = stats.get("bytes_read", 0) + len(text.encode("utf-8", errors="replace"))
            yield from filter(None, (line.strip() for line in text.split("\n")))
            if entry.name != "text" or not text.strip():
                yield ""
    except DataError:
        raise
    except Exception as e:  # network, missing dataset, bad files: one line naming the dataset
        raise DataError(f"cannot read hub dataset {entry.describe()}: {first_line(e)}") from None


def check_sources(sources) -> None:
    """Cheap checks before the streaming pass: every custom folder holds .txt files."""
    if not sources:
        raise DataError("no input corpus: give at least one --dataset (or DATASET.CUSTOMIZED_DATASETS / "
                        "DATASET.HUGGINGFACE_DATASETS)")
    for source in sources:
        if source.kind == "custom":
            list_corpus_files(source.name)


def iter_articles(sources, encoding_errors: str = "strict", stats: dict = None):
    """Articles of every source, in order. ``stats`` receives ``articles_split`` (articles cut for length) and
    ``bytes_read`` (of the input so far)."""
    stats = {} if stats is None else stats
    for source in sources:
        if source.kind == "custom":
            yield from iter_custom_articles(source.name, encoding_errors, stats)
        else:
            yield from _articles_from_lines(_hub_lines(source.hub_entry(), stats), stats)


def corpus_bytes(sources):
    """Bytes the sources hold, known before reading when every source is a folder of files (the sharding progress
    bar's total); None with a hub dataset, which is streamed without a size known up front."""
    if any(source.kind != "custom" for source in sources):
        return None
    return sum(path.stat().st_size for source in sources for path in list_corpus_files(source.name))
