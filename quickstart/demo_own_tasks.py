"""Demo tasks of one's own (``FINETUNE.OWN_TASKS``), written from the same real sentences as the GLUE-layout demo
tasks, in the formats a user brings: CSV and CoNLL.

- ``own/word_order/{train,dev,test}.csv``, a classification: columns ``id``, ``text``, ``label`` (``original`` or
  ``shuffled``: the CoLA-format rule of ``demo_tasks``, the same rows); the test file has no label.
- ``own/mentions/{train,dev,test}.conll``, an entity task (IOB2, ``token<TAB>tag``, a blank line between
  sentences): the same sentences split into words and punctuation, where a word is ``CODE`` when it is written as
  a Python name (it holds ``_``, a ``.`` between letters, or a capital after a lower-case letter: ``max_length``,
  ``os.path``, ``camelCase``), ``NUM`` when it is all digits, else ``O``. Every entity is one word, so every tag is
  exact by construction. The test file is tagged too, as CoNLL test files are; its predictions ignore the tags.

Like the GLUE-layout demo tasks they teach nothing about any real task; they show the own-task path end to end.
"""
import csv
import re
from pathlib import Path

OWN_DIR = "own"
_WORD = re.compile(r"[\w.]*\w|[^\w\s]")  # a word (dots inside kept: os.path, 3.5) or one punctuation mark
_CODE = re.compile(r"_|[a-z]\.[a-z]|[a-z][A-Z]")
WORD_ORDER_LABELS = {1: "original", 0: "shuffled"}


def word_tags(sentence: str) -> list:
    """``(word, tag)`` for every word and punctuation mark of ``sentence`` (the rule in the module docstring)."""
    tagged = []
    for word in _WORD.findall(sentence):
        tag = "B-NUM" if word.isdigit() else "B-CODE" if _CODE.search(word) else "O"
        tagged.append((word, tag))
    return tagged


def _write_csv(path: Path, header: list, rows) -> int:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return len(rows)


def _write_conll(path: Path, sentences) -> int:
    blocks = ["".join(f"{word}\t{tag}\n" for word, tag in word_tags(sentence)) for sentence in sentences]
    path.write_text("\n".join(blocks), encoding="utf-8", newline="\n")
    return len(blocks)


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
        counts["word_order"][f"{split}.csv"] = _write_csv(own_dir / "word_order" / f"{split}.csv",
                                                          ["id", "text", *["label"] * labeled], rows)
        counts["mentions"][f"{split}.conll"] = _write_conll(own_dir / "mentions" / f"{split}.conll",
                                                            [sentence for sentence, _label in examples])
    return counts
