"""Demo classification tasks in the official GLUE file layout, derived from the demo corpus by fixed rules
(``TASK_DESCRIPTIONS``), so that finetuning and result collection run end to end with no download. They are not
GLUE, and their scores say nothing about GLUE.

- CoLA format, "demo-shuffle": the first and last words stay in place, so the capital letter and the final full stop
  give nothing away: only word order does. Labels are balanced (the odd one out going to label 1).
- MRPC format, "demo-adjacent": a third of the rows are label 1, so that MRPC's metric (F1 of label 1) rewards
  telling pairs apart: answering "adjacent" to everything scores F1 50 (66.7 on balanced rows, more than a briefly
  pretrained tiny BERT reaches), "not adjacent" 0. Sentence IDs are random numbers: they reveal nothing.

Articles are split into train / dev / test before any example is drawn, so no article (and no sentence) feeds two
splits. ``demo_tasks.json`` in the GLUE_DIR (``{"tasks": {task: {name, rule, rows}}, "note"}``) marks the folders as
demo tasks for the result collection, which must never report results on them as GLUE numbers.

Tasks of one's own (``FINETUNE.OWN_TASKS``), from the same rows, in the formats a user brings (``OWN_DIR``):
- ``word_order/{train,dev,test}.csv``, a classification: ``id``, ``text``, ``label`` (``original`` or ``shuffled``:
  the CoLA-format rows); the test file has no label.
- ``mentions/{train,dev,test}.conll``, an entity task (IOB2, ``token<TAB>tag``, a blank line between sentences): a
  word is ``CODE`` when written as a Python name (``_``, a ``.`` between letters, or a capital after a lower-case
  letter: ``max_length``, ``os.path``, ``camelCase``), ``NUM`` when all digits, else ``O``; every entity is one word,
  so every tag is exact by construction. The test file is tagged too, as CoNLL test files are.
"""
import csv
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import DataError
from pipeline.manifest import read_json, write_json_atomic
from quickstart.demo_corpus import split_sentences

DEMO_TASKS_FILE = "demo_tasks.json"
SPLITS = ("train", "dev", "test")
MIN_SENTENCE_WORDS = 6  # leaves at least 4 interior words to reorder
MAX_SENTENCE_WORDS = 40  # a pair of these still fits a 128-token sequence
# Held-out splits take articles until they hold this many times the sentences they need, so the random draws of
# examples never run short.
HELDOUT_MARGIN = 1.5
# ... and at least this many articles, so no single long article supplies most sentences (MRPC negatives need
# sentences from two different articles).
MIN_HELDOUT_ARTICLES = 20

OWN_DIR = "own"
_WORD = re.compile(r"[\w.]*\w|[^\w\s]")  # a word (dots inside kept: os.path, 3.5) or one punctuation mark
_CODE = re.compile(r"_|[a-z]\.[a-z]|[a-z][A-Z]")
WORD_ORDER_LABELS = {1: "original", 0: "shuffled"}

CORPUS_NOTE = "Demo tasks derived from the local corpus; not GLUE. Scores are not comparable to GLUE."
TASK_DESCRIPTIONS = {
    "CoLA": {"name": "demo-shuffle (CoLA format)",
             "rule": "label 1: a sentence as written in the corpus; label 0: the same kind of sentence with its "
                     "interior words (all but the first and last) randomly reordered"},
    "MRPC": {"name": "demo-adjacent (MRPC format)",
             "rule": "label 1 (a third of the rows): #2 is the sentence that directly follows #1 in the same "
                     "article; label 0: #1 and #2 come from two different articles"},
}


@dataclass
class SplitPool:
    """The task material of one split: eligible sentences and disjoint adjacent pairs, tagged by article."""
    articles: list = field(default_factory=list)  # indices into the article list
    sentences: list = field(default_factory=list)  # (article, sentence)
    pairs: list = field(default_factory=list)  # (article, first sentence, next sentence)

    def add(self, article_index: int, material) -> None:
        sentences, pairs = material[article_index]
        self.articles.append(article_index)
        self.sentences.extend((article_index, s) for s in sentences)
        self.pairs.extend((article_index, a, b) for a, b in pairs)


def _eligible(sentence: str) -> bool:
    # Double quotes are left out so that no reader, however it treats quoting, can misread a row.
    words = sentence.split()
    return (MIN_SENTENCE_WORDS <= len(words) <= MAX_SENTENCE_WORDS and sentence[-1] in ".!?"
            and '"' not in sentence and len(set(words[1:-1])) > 1)


def article_material(article, seen: set):
    """``(sentences, pairs)`` usable from one article: eligible sentences not seen in earlier articles, and
    adjacent eligible pairs that share no sentence."""
    ordered = [s for paragraph in article.paragraphs for s in split_sentences(paragraph)]
    usable = []
    for sentence in ordered:
        fresh = sentence not in seen
        seen.add(sentence)
        usable.append(fresh and _eligible(sentence))
    sentences = [s for s, ok in zip(ordered, usable) if ok]
    pairs = []
    i = 0
    while i + 1 < len(ordered):
        if usable[i] and usable[i + 1]:
            pairs.append((ordered[i], ordered[i + 1]))
            i += 2
        else:
            i += 1
    return sentences, pairs


def split_articles(articles, seed: int, sizes: dict) -> dict:
    """Assign whole articles to ``train``/``dev``/``test``: test and dev draw random articles until they hold
    enough material for ``sizes`` (``{task: (train, dev, test)}``) with a margin; train keeps the rest."""
    seen = set()
    material = [article_material(article, seen) for article in articles]
    order = list(range(len(articles)))
    random.Random(seed).shuffle(order)
    pools = {split: SplitPool() for split in SPLITS}
    for split in ("test", "dev"):
        index = SPLITS.index(split)
        # CoLA uses one sentence per example, MRPC two (its positives also need adjacent pairs).
        need_sentences = HELDOUT_MARGIN * max(sizes["CoLA"][index], 2 * sizes["MRPC"][index])
        need_pairs = HELDOUT_MARGIN * mrpc_positives(sizes["MRPC"][index])
        pool = pools[split]
        while order and (len(pool.sentences) < need_sentences or len(pool.pairs) < need_pairs
                         or len(pool.articles) < MIN_HELDOUT_ARTICLES):
            pool.add(order.pop(), material)
    for article_index in sorted(order):
        pools["train"].add(article_index, material)
    return pools


def mrpc_positives(n: int) -> int:
    """How many of ``n`` MRPC-format rows are label 1 (adjacent): a third, rounded up."""
    return -(-n // 3)


def shuffle_interior(sentence: str, rng: random.Random) -> str:
    """The sentence with every word but the first and the last moved to a random place (never the same order)."""
    words = sentence.split()
    interior = words[1:-1]
    shuffled = interior[:]
    while shuffled == interior:  # eligible sentences have two distinct interior words, so this ends
        rng.shuffle(shuffled)
    return " ".join([words[0], *shuffled, words[-1]])


def cola_examples(pool: SplitPool, n: int, rng: random.Random, split: str) -> list:
    """``n`` ``(sentence, label)`` rows, balanced, each from a different corpus sentence."""
    if len(pool.sentences) < n:
        raise DataError(f"the demo corpus has {len(pool.sentences)} usable {split} sentences, fewer than the {n} "
                        "CoLA-format examples asked for: raise target_corpus_mb or lower cola_sizes")
    chosen = rng.sample(pool.sentences, n)
    labels = [1] * (n - n // 2) + [0] * (n // 2)
    rng.shuffle(labels)
    return [(sentence if label else shuffle_interior(sentence, rng), label)
            for (_article, sentence), label in zip(chosen, labels)]


def mrpc_examples(pool: SplitPool, n: int, rng: random.Random, split: str) -> list:
    """``n`` ``(first, second, label)`` rows, a third of them label 1; no sentence is used twice."""
    n_positive = mrpc_positives(n)
    n_negative = n - n_positive
    if len(pool.pairs) < n_positive:
        raise DataError(f"the demo corpus has {len(pool.pairs)} adjacent {split} sentence pairs, fewer than the "
                        f"{n_positive} MRPC-format positives needed: raise target_corpus_mb or lower mrpc_sizes")
    positives = rng.sample(pool.pairs, n_positive)
    used = {s for _article, a, b in positives for s in (a, b)}
    remaining = [(article, s) for article, s in pool.sentences if s not in used]
    rng.shuffle(remaining)
    negatives = []
    while len(negatives) < n_negative and len(remaining) >= 2:
        article, first = remaining.pop()
        partner = next((i for i in range(len(remaining) - 1, -1, -1) if remaining[i][0] != article), None)
        if partner is None:
            break
        negatives.append((first, remaining.pop(partner)[1]))
    if len(negatives) < n_negative:
        raise DataError(f"the demo corpus has too few {split} sentences from distinct articles for "
                        f"{n_negative} MRPC-format negatives: raise target_corpus_mb or lower mrpc_sizes")
    rows = [(a, b, 1) for _article, a, b in positives] + [(a, b, 0) for a, b in negatives]
    rng.shuffle(rows)
    return rows


def _tsv(rows) -> str:
    for row in rows:
        for value in row:
            if "\t" in str(value) or "\n" in str(value):
                raise ValueError(f"a demo TSV field holds a tab or newline: {value!r}")
    return "".join("\t".join(str(v) for v in row) + "\n" for row in rows)


def _write_tsvs(task_dir, tables: dict) -> dict:
    """Write ``{split}.tsv`` for each ``{split: (header rows, rows)}``; returns the rows (headers aside) per file."""
    task_dir.mkdir(parents=True)
    for split, (header, rows) in tables.items():
        (task_dir / f"{split}.tsv").write_text(_tsv(header + rows), encoding="utf-8", newline="\n")
    return {f"{split}.tsv": len(rows) for split, (_header, rows) in tables.items()}


def write_cola(task_dir, splits: dict) -> dict:
    """CoLA layout: train/dev ``source, label, star, sentence`` with no header (``*`` marks label 0 as in the
    original), test ``index, sentence`` with a header."""
    tables = {}
    for split, examples in splits.items():
        if split == "test":
            tables[split] = ([("index", "sentence")], [(i, s) for i, (s, _label) in enumerate(examples)])
        else:
            tables[split] = ([], [("demo", label, "" if label else "*", s) for s, label in examples])
    return _write_tsvs(task_dir, tables)


def write_mrpc(task_dir, splits: dict, rng: random.Random) -> dict:
    """MRPC layout: train/dev with the official BOM header ``Quality, #1 ID, #2 ID, #1 String, #2 String``, test
    ``index, #1 ID, #2 ID, #1 String, #2 String``."""
    ids = iter(rng.sample(range(1_000_000, 10_000_000), 2 * sum(map(len, splits.values()))))
    tables = {}
    for split, examples in splits.items():
        test = split == "test"
        firsts = [i if test else label for i, (_a, _b, label) in enumerate(examples)]
        tables[split] = ([("index" if test else "\ufeffQuality", "#1 ID", "#2 ID", "#1 String", "#2 String")],
                         [(first, next(ids), next(ids), a, b) for first, (a, b, _label) in zip(firsts, examples)])
    return _write_tsvs(task_dir, tables)


def draw_demo_examples(pools: dict, seed: int, sizes: dict) -> dict:
    """``{task: {split: rows}}`` drawn from ``pools`` for ``sizes`` (``{task: (train, dev, test)}``); raises
    DataError when a split has too little material."""
    # One generator per task, so changing one task's sizes leaves the other task's files unchanged.
    draws = {"CoLA": cola_examples, "MRPC": mrpc_examples}
    rngs = {task: random.Random(f"{seed}-{task}") for task in draws}
    return {task: {split: draw(pools[split], sizes[task][i], rngs[task], split) for i, split in enumerate(SPLITS)}
            for task, draw in draws.items()}


def write_demo_tasks(examples: dict, glue_dir, seed: int) -> dict:
    """Write the task folders and ``demo_tasks.json`` into ``glue_dir`` (which must not exist yet).
    Returns ``{task: {file: rows}}``."""
    glue_dir.mkdir(parents=True)
    counts = {"CoLA": write_cola(glue_dir / "CoLA", examples["CoLA"]),
              "MRPC": write_mrpc(glue_dir / "MRPC", examples["MRPC"], random.Random(f"{seed}-MRPC-ids"))}
    description = {"tasks": {task: {**TASK_DESCRIPTIONS[task], "rows": counts[task]} for task in counts},
                   "note": CORPUS_NOTE}
    write_json_atomic(demo_tasks_path(glue_dir), description)
    return counts


def demo_tasks_path(glue_dir) -> Path:
    return Path(glue_dir) / DEMO_TASKS_FILE


def demo_tasks_problem(glue_dir) -> str:
    """Why ``demo_tasks.json`` in ``glue_dir`` is malformed ("" when it is absent or well formed)."""
    if not glue_dir or not demo_tasks_path(glue_dir).exists():
        return ""
    path = demo_tasks_path(glue_dir)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
        return f"{path}: expected a JSON object with a \"tasks\" mapping (task -> {{name, rule}})"
    for task, entry in data["tasks"].items():
        if not isinstance(entry, dict) or not all(isinstance(entry.get(key), str) for key in ("name", "rule")):
            return f"{path}: task {task!r} needs a \"name\" and a \"rule\" string"
    return ""


def load_demo_tasks(glue_dir):
    """{"tasks": {task: {"name", "rule"}}, "note": str} when ``glue_dir`` holds demo tasks, else None."""
    if problem := demo_tasks_problem(glue_dir):
        raise DataError(problem)
    data = read_json(demo_tasks_path(glue_dir)) if glue_dir else None
    return {"tasks": data["tasks"], "note": str(data.get("note", ""))} if data else None


def word_tags(sentence: str) -> list:
    """``(word, tag)`` for every word and punctuation mark of ``sentence`` (the rule in the module docstring)."""
    return [(word, "B-NUM" if word.isdigit() else "B-CODE" if _CODE.search(word) else "O")
            for word in _WORD.findall(sentence)]


def write_own_demo_tasks(cola_examples: dict, own_dir: Path) -> dict:
    """Write both tasks from the CoLA-format rows (``{split: [(sentence, label), ...]}``) into ``own_dir``;
    returns ``{task: {file: rows}}``."""
    counts = {"word_order": {}, "mentions": {}}
    for task in counts:
        (own_dir / task).mkdir(parents=True)
    for split, examples in cola_examples.items():
        labeled = split != "test"
        rows = [(f"{split}-{i}", sentence, *[WORD_ORDER_LABELS[label]] * labeled)
                for i, (sentence, label) in enumerate(examples)]
        with open(own_dir / "word_order" / f"{split}.csv", "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([("id", "text", *["label"] * labeled), *rows])
        blocks = ["".join(f"{word}\t{tag}\n" for word, tag in word_tags(sentence)) for sentence, _label in examples]
        (own_dir / "mentions" / f"{split}.conll").write_text("\n".join(blocks), encoding="utf-8", newline="\n")
        counts["word_order"][f"{split}.csv"] = len(rows)
        counts["mentions"][f"{split}.conll"] = len(blocks)
    return counts
