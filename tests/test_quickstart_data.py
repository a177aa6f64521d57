"""The quickstart's offline data: a docstring corpus and demo tasks in the exact GLUE file layout."""
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dataset.corpus_readers import iter_custom_articles
from finetuning.glue_tasks import GLUE_TASKS
from pipeline.errors import ConfigError, DataError
from pipeline.manifest import read_manifest
from quickstart.build_demo_data import build_demo_data
from quickstart.demo_corpus import collect_articles, docstring_paragraphs, split_sentences
from quickstart.demo_tasks import SPLITS, load_demo_tasks, shuffle_interior, split_articles

REPO_ROOT = Path(__file__).resolve().parents[1]
# Small enough to build in about a second, large enough for the task sizes below.
SMALL = dict(seed=7, target_corpus_mb=0.4, cola_sizes=(200, 40, 40), mrpc_sizes=(120, 30, 30))


def _files(folder: Path) -> dict:
    """Relative path -> bytes of every output file (the manifest records a timestamp, so it is left out)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "data"
    manifest = build_demo_data(out, workers=1, **SMALL)
    return out, manifest


def _read_tsv(path: Path) -> list:
    # Exactly how GLUE files are read by the finetuning stage: tabs, no quoting, BOM dropped.
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _split_rows(glue_dir: Path, task_name: str, which: str) -> tuple:
    """(header or None, rows) of one split, read by the task table's description of the official layout."""
    task = GLUE_TASKS[task_name]
    split = {"train": task.train, "dev": task.dev.get("dev"), "test": task.test.get(task_name)}[which]
    rows = _read_tsv(glue_dir / task.folder / split.file)
    return (rows[0], rows[1:]) if split.has_header else (None, rows)


def _labeled(glue_dir: Path, task_name: str, which: str) -> list:
    """[(texts..., label)] of a train/dev split, columns located through the task table."""
    task = GLUE_TASKS[task_name]
    split = task.train if which == "train" else task.dev["dev"]
    header, rows = _split_rows(glue_dir, task_name, which)
    columns = [c if isinstance(c, int) else header.index(c) for c in (*split.text_columns, split.label_column)]
    return [tuple(row[c] for c in columns) for row in rows]


def test_two_builds_are_byte_identical_whatever_the_worker_count(built, tmp_path):
    out, _ = built
    build_demo_data(tmp_path / "again", workers=2, **SMALL)
    first, second = _files(out), _files(tmp_path / "again")
    assert first.keys() == second.keys() and first == second
    assert read_manifest(out)["settings"] == read_manifest(tmp_path / "again")["settings"]


def test_rerun_returns_the_manifest_and_rewrites_nothing(built):
    out, manifest = built
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert build_demo_data(out, **SMALL) == manifest
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes


def test_partial_output_is_rebuilt_to_the_same_files(built, tmp_path):
    out, _ = built
    copy = tmp_path / "partial"
    shutil.copytree(out, copy)
    expected = _files(copy)
    (copy / "corpus" / "corpus_00000.txt").unlink()
    with open(copy / "glue" / "MRPC" / "dev.tsv", "r+b") as f:
        f.truncate(100)
    build_demo_data(copy, **SMALL)
    assert _files(copy) == expected
    assert not (copy / ".staging").exists()


def test_changed_seed_rebuilds_different_tasks(built, tmp_path):
    out, _ = built
    other = tmp_path / "seed"
    build_demo_data(other, **{**SMALL, "seed": 8})
    assert _files(other)["glue/CoLA/train.tsv"] != _files(out)["glue/CoLA/train.tsv"]
    assert read_manifest(other)["settings"]["seed"] == 8


def test_corpus_is_utf8_paragraph_lines_with_blank_lines_between_articles(built):
    out, manifest = built
    files = sorted((out / "corpus").glob("*.txt"))
    assert files
    articles = 0
    for path in files:
        text = path.read_bytes().decode("utf-8")
        assert text.endswith("\n\n") and "\n\n\n" not in text and not text.startswith("\n")
        for article in text[:-2].split("\n\n"):
            lines = article.split("\n")
            assert lines and all(line.strip() == line and line for line in lines)
            assert not any(line.startswith((">>>", "...", "..")) or "\t" in line for line in lines)
            articles += 1
    assert articles == manifest["corpus"]["articles"] > 0
    # The dataset stage's own reader sees the same articles.
    assert sum(1 for _ in iter_custom_articles(out / "corpus")) == articles
    assert manifest["corpus"]["bytes"] == sum(p.stat().st_size for p in files)


def test_cola_files_have_the_official_layout_and_balanced_labels(built):
    out, _ = built
    glue = out / "glue"
    for which, n in zip(("train", "dev"), SMALL["cola_sizes"]):
        _, rows = _split_rows(glue, "CoLA", which)
        assert len(rows) == n and all(len(row) == 4 for row in rows)
        assert all(row[0] == "demo" and row[2] == ("" if row[1] == "1" else "*") for row in rows)
        labels = [label for _sentence, label in _labeled(glue, "CoLA", which)]
        assert sorted(set(labels)) == ["0", "1"] and labels.count("1") == n - n // 2
    header, rows = _split_rows(glue, "CoLA", "test")
    assert header == ["index", "sentence"]
    assert [row[0] for row in rows] == [str(i) for i in range(SMALL["cola_sizes"][2])]


def test_mrpc_files_have_the_official_layout_and_a_third_positive_labels(built):
    out, _ = built
    glue = out / "glue"
    for which, n in zip(("train", "dev"), SMALL["mrpc_sizes"]):
        raw = (glue / "MRPC" / f"{which}.tsv").read_bytes()
        assert raw.startswith("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n".encode("utf-8"))
        _, rows = _split_rows(glue, "MRPC", which)
        assert len(rows) == n and all(len(row) == 5 and row[1].isdigit() and row[2].isdigit() for row in rows)
        labels = [label for _a, _b, label in _labeled(glue, "MRPC", which)]
        assert labels.count("1") == -(-n // 3) and labels.count("0") == n - -(-n // 3)
    raw = (glue / "MRPC" / "test.tsv").read_bytes()
    assert raw.startswith(b"index\t#1 ID\t#2 ID\t#1 String\t#2 String\n")
    _, rows = _split_rows(glue, "MRPC", "test")
    assert [row[0] for row in rows] == [str(i) for i in range(SMALL["mrpc_sizes"][2])]


def test_cola_negatives_are_interior_shuffles_of_corpus_sentences(built):
    out, _ = built
    corpus = " ".join(p.read_text(encoding="utf-8") for p in sorted((out / "corpus").glob("*.txt")))
    examples = _labeled(out / "glue", "CoLA", "train")
    originals = [s for s, label in examples if label == "1"]
    assert all(s in corpus for s in originals)  # train articles stay in the corpus
    for sentence, label in examples:
        if label == "0":
            assert sentence not in corpus


def test_mrpc_positives_are_adjacent_sentences_and_negatives_are_not(built):
    out, _ = built
    corpus = "\n".join(p.read_text(encoding="utf-8") for p in sorted((out / "corpus").glob("*.txt")))
    for first, second, label in _labeled(out / "glue", "MRPC", "train"):
        adjacent = f"{first} {second}" in corpus or f"{first}\n{second}" in corpus
        assert adjacent == (label == "1"), (first, second, label)


def test_dev_and_test_sentences_never_reach_the_corpus_or_the_other_splits(built):
    out, _ = built
    corpus = "\n".join(p.read_text(encoding="utf-8") for p in sorted((out / "corpus").glob("*.txt")))
    glue = out / "glue"
    sentences = {}
    for which in SPLITS:
        found = set()
        for task, columns in (("CoLA", (3,)), ("MRPC", (3, 4))):
            header, rows = _split_rows(glue, task, which)
            if which == "test":  # test files have an index column in front
                columns = tuple(header.index(c) for c in GLUE_TASKS[task].test[task].text_columns)
            found.update(row[c] for row in rows for c in columns)
        sentences[which] = found
    assert not sentences["train"] & sentences["dev"]
    assert not sentences["train"] & sentences["test"]
    assert not sentences["dev"] & sentences["test"]
    assert not any(s in corpus for s in sentences["dev"] | sentences["test"])


def test_articles_are_split_disjointly():
    articles = collect_articles(300_000, workers=1)
    pools = split_articles(articles, seed=3, sizes={"CoLA": (100, 20, 20), "MRPC": (100, 20, 20)})
    train, dev, test = (set(pools[s].articles) for s in SPLITS)
    assert train and dev and test
    assert not train & dev and not train & test and not dev & test
    assert train | dev | test == set(range(len(articles)))


def test_demo_tasks_json_names_each_task_as_a_demo(built):
    out, _ = built
    demo = load_demo_tasks(out / "glue")  # the result-collection stage's own reader
    assert set(demo["tasks"]) == {"CoLA", "MRPC"}
    assert demo["tasks"]["CoLA"]["name"].startswith("demo-") and demo["tasks"]["MRPC"]["rule"]
    assert "not GLUE" in demo["note"]


def test_prose_filter_drops_doctests_code_fields_and_license_text():
    source = b'''"""Tools that turn a list of words into one well formed sentence for the reader.

    Copyright (c) 2020 Example Org. Licensed under the Apache License, Version 2.0, see the file.

    >>> join_words(["a", "b"])
    'a b'
    """


def join_words(words):
    """Join the words of a list with single spaces, as a person would write them.

    Args:
        words: the words to join together into one long sentence here.

    Parameters
    ----------
    words : list
        The words.

    Use :func:`join_words` when the ``words`` come from a tokenizer that removed all spaces.
    x = foo(bar)[0] + baz.qux(1, 2, 3) * 7 == 0 or not
    """
'''
    assert docstring_paragraphs(source) == [
        "Tools that turn a list of words into one well formed sentence for the reader.",
        "Join the words of a list with single spaces, as a person would write them.",
    ]
    assert docstring_paragraphs(b"def broken(:\n") == []


def test_markup_is_stripped_from_kept_paragraphs():
    source = b'"""Use :func:`join_words` when the ``words`` come from a *tokenizer* that removed the spaces."""\n'
    assert docstring_paragraphs(source) == [
        "Use join_words when the words come from a tokenizer that removed the spaces."]


def test_sentence_splitter_keeps_abbreviations_and_initials_together():
    text = "Pass a mapping, e.g. A dict of names. It was written by J. Smith in Python. Does it work? Yes."
    assert split_sentences(text) == ["Pass a mapping, e.g. A dict of names.", "It was written by J. Smith in Python.",
                                     "Does it work?", "Yes."]


def test_shuffle_keeps_the_outer_words_and_changes_the_order():
    import random
    sentence = "The parser reads every line of the file before it returns."
    shuffled = shuffle_interior(sentence, random.Random(0))
    words, new = sentence.split(), shuffled.split()
    assert new != words and sorted(new) == sorted(words)
    assert new[0] == words[0] and new[-1] == words[-1]


def test_a_corpus_too_small_for_the_tasks_fails_before_writing(tmp_path):
    with pytest.raises(DataError, match="target_corpus_mb"):
        build_demo_data(tmp_path / "small", target_corpus_mb=0.05, cola_sizes=(2000, 400, 400))
    assert not (tmp_path / "small").exists()


@pytest.mark.parametrize("bad", [dict(target_corpus_mb=0), dict(cola_sizes=(10, 5)), dict(mrpc_sizes=(10, 1, 5)),
                                 dict(workers=0)])
def test_bad_arguments_are_one_line_config_errors(tmp_path, bad):
    with pytest.raises(ConfigError) as error:
        build_demo_data(tmp_path / "bad", **bad)
    assert "\n" not in str(error.value) and not (tmp_path / "bad").exists()


@pytest.mark.parametrize("entry", [["-m", "quickstart.build_demo_data"], ["quickstart/build_demo_data.py"]])
def test_cli_finds_the_finished_build(built, entry):
    out, _ = built
    args = ["--output_dir", str(out), "--seed", "7", "--target_corpus_mb", "0.4", "--cola_sizes", "200", "40", "40",
            "--mrpc_sizes", "120", "30", "30"]
    result = subprocess.run([sys.executable, *entry, *args], cwd=REPO_ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": ""}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"articles"' in result.stdout and '"MRPC"' in result.stdout


def test_the_finetuning_readers_load_every_demo_file(built):
    from finetuning.glue_data import read_local_split
    out, _ = built
    for name, sizes in (("CoLA", SMALL["cola_sizes"]), ("MRPC", SMALL["mrpc_sizes"])):
        task = GLUE_TASKS[name]
        for split, n in zip((task.train, task.dev["dev"], task.test[name]), sizes):
            loaded = read_local_split(out / "glue", task, split)
            assert len(loaded) == n and all(loaded.text_a)
            if split.label_column is not None:
                assert sum(loaded.labels) == (n - n // 2 if name == "CoLA" else -(-n // 3))
            else:
                assert loaded.labels is None and loaded.index == [str(i) for i in range(n)]
