"""Route a stream of articles into train/test text shards (``train_NNNNN.txt``, ``test_NNNNN.txt``: one line of an
article per line, a blank line after every article) in one pass. The folder is complete when ``sharding.json``
(written last) is present; shards are written under ``.partial/`` and moved into place only then.

Routing is deterministic for a seed. An article goes to the test split with probability ``deficit / length``
(clipped to [0, 1]), where ``deficit`` is how many characters the test split is short of ``frac_test`` of the text
seen so far, this article included. The choice is random (seeded) yet the test share of *text* tracks
``frac_test`` within about one article, whatever the article lengths. Within a split, each article goes to the
shard holding the least text so far (lowest index on ties), so shards are balanced to within one article.
"""
import heapq
import logging
import random
import shutil
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.errors import DataError
from pipeline.manifest import as_stored, read_json, write_json_atomic

from dataset.corpus_readers import check_sources, corpus_bytes, iter_articles

log = logging.getLogger(__name__)

SHARDING_RECORD = "sharding.json"
MAX_OPEN_FILES = 64  # shard files kept open at once; the others are reopened for appending when needed


@dataclass(frozen=True)
class ShardingOptions:
    num_train_shards: int
    num_test_shards: int
    frac_test: float
    seed: int
    encoding_errors: str = "strict"


class ArticleRouter:
    """Decides the (split, shard index) of each article from its length; see the module docstring."""

    def __init__(self, options: ShardingOptions):
        if options.frac_test > 0 and options.num_test_shards == 0:
            raise DataError(f"frac_test = {options.frac_test} needs at least one test shard (num_test_shards = 0)")
        self.frac_test = options.frac_test if options.num_test_shards else 0.0
        self.random = random.Random(options.seed)
        self.total_chars = 0
        self.test_chars = 0
        self.heaps = {"train": [(0, i) for i in range(options.num_train_shards)],
                      "test": [(0, i) for i in range(options.num_test_shards)]}

    def route(self, chars: int):
        self.total_chars += chars
        deficit = self.frac_test * self.total_chars - self.test_chars
        draw = self.random.random()  # drawn for every article so that the stream of draws is fixed
        split = "test" if self.frac_test and draw * chars < deficit else "train"
        if split == "test":
            self.test_chars += chars
        size, index = heapq.heappop(self.heaps[split])
        heapq.heappush(self.heaps[split], (size + chars, index))
        return split, index


class ShardFiles:
    """Append-only text files under one folder with at most MAX_OPEN_FILES open at once (LRU)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.open_files = OrderedDict()
        self.chars = {}

    def write(self, name: str, text: str) -> None:
        handle = self.open_files.pop(name, None)
        if handle is None:
            if len(self.open_files) >= MAX_OPEN_FILES:
                _, oldest = self.open_files.popitem(last=False)
                oldest.close()
            handle = open(self.folder / name, "a", encoding="utf-8", newline="\n")
        self.open_files[name] = handle
        handle.write(text)
        self.chars[name] = self.chars.get(name, 0) + len(text)

    def close(self) -> None:
        for handle in self.open_files.values():
            handle.close()
        self.open_files.clear()


def _fingerprint_sources(sources) -> list:
    from pipeline.run_ids import corpus_fingerprint

    return [[s.kind, s.name, s.subset, s.text_column] for s in sources] + \
        corpus_fingerprint([s.name for s in sources if s.kind == "custom"])


def list_text_shards(text_dir, split: str) -> list:
    """The text shards of one split in a folder, sorted by name (``train``/``training`` or ``test``/``valid``)."""
    words = ("train",) if split == "train" else ("test", "valid")
    return sorted(p for p in Path(text_dir).glob("*.txt") if not p.name.startswith(".")
                  and any(w in p.name.lower() for w in words))


def shard_corpus(sources, out_dir, options: ShardingOptions, progress: bool = True) -> dict:
    """Write the text shards of ``sources`` into ``out_dir``; returns the sharding record (also saved as JSON), the
    saved one without doing anything when a completed sharding with the same inputs and options exists."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    saved = read_json(out_dir / SHARDING_RECORD) or {}
    if (saved.get("options") == asdict(options) and saved.get("sources") == as_stored(_fingerprint_sources(sources))
            and all((out_dir / name).is_file() for name in saved.get("shards", {}))):
        return saved
    check_sources(sources)
    (out_dir / SHARDING_RECORD).unlink(missing_ok=True)
    partial = out_dir / ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for old in list_text_shards(out_dir, "train") + list_text_shards(out_dir, "test"):
        old.unlink()

    router = ArticleRouter(options)
    files = ShardFiles(partial)
    stats = {}
    articles = 0
    started = time.time()
    # In bytes of input, against the corpus' size when it is known up front (folders of files): tqdm's ETA then holds.
    bar = tqdm(desc="routing articles", total=corpus_bytes(sources), unit="B", unit_scale=True, disable=not progress,
               mininterval=1.0, smoothing=0.1)
    try:
        for lines in iter_articles(sources, options.encoding_errors, stats):
            text = "\n".join(lines) + "\n\n"
            split, index = router.route(len(text))
            files.write(f"{split}_{index:05d}.txt", text)
            articles += 1
            bar.update(stats.get("bytes_read", 0) - bar.n)
            if articles % 1000 == 0:
                bar.set_postfix_str(f"{articles:,} articles")
    finally:
        files.close()
        bar.close()
    if router.total_chars == 0:
        raise DataError(f"the corpus is empty: {', '.join(s.describe() for s in sources)} hold(s) no text")
    for name in files.chars:
        (partial / name).replace(out_dir / name)
    partial.rmdir()
    record = {
        "options": asdict(options),
        "sources": _fingerprint_sources(sources),
        "articles": articles,
        "articles_split": stats.get("articles_split", 0),
        "chars": router.total_chars,
        "test_chars": router.test_chars,
        "shards": {name: files.chars[name] for name in sorted(files.chars)},
        "seconds": round(time.time() - started, 2),
    }
    write_json_atomic(out_dir / SHARDING_RECORD, record)
    if record["articles_split"]:
        log.info(f"note: {record['articles_split']} article(s) longer than the article limit were split")
    return record
