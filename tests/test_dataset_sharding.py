"""Routing articles into train/test text shards: deterministic, split by text fraction, balanced, resumable."""
import random

import pytest

from dataset.corpus_readers import CorpusSource
from dataset.text_shards import SHARDING_RECORD, ArticleRouter, ShardingOptions, list_text_shards, shard_corpus
from pipeline.errors import DataError
from tests.test_dataset_fixtures import write_corpus


def _shard(corpus, out, **overrides):
    options = dict(num_train_shards=4, num_test_shards=2, frac_test=0.2, seed=7)
    options.update(overrides)
    return shard_corpus([CorpusSource("custom", str(corpus))], out, ShardingOptions(**options), progress=False)


def _contents(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.txt"))}


def test_sharding_is_deterministic_for_a_seed_and_changes_with_it(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", files=2, articles_per_file=30)
    _shard(corpus, tmp_path / "a")
    _shard(corpus, tmp_path / "b")
    _shard(corpus, tmp_path / "c", seed=8)
    assert _contents(tmp_path / "a") == _contents(tmp_path / "b")
    assert _contents(tmp_path / "a") != _contents(tmp_path / "c")


def test_text_shards_keep_lines_and_separate_articles_with_a_blank_line(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_bytes(b"first line\r\nsecond line\r\n \r\nother article\r\n")
    _shard(tmp_path / "corpus", tmp_path / "out", num_train_shards=1, num_test_shards=0, frac_test=0.0)
    assert (tmp_path / "out" / "train_00000.txt").read_text() == "first line\nsecond line\n\nother article\n\n"


def test_every_article_lands_in_exactly_one_shard(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", files=2, articles_per_file=25)
    _shard(corpus, tmp_path / "out")
    source = sorted(("\n".join(a) for f in sorted(corpus.glob("*.txt")) for a in
                     [b.split("\n") for b in f.read_text().strip().split("\n\n")]))
    sharded = sorted(a for f in (tmp_path / "out").glob("*.txt") for a in f.read_text().strip().split("\n\n"))
    assert sharded == source


def test_test_split_gets_about_frac_test_of_the_text_even_with_uneven_articles():
    rng = random.Random(0)
    for frac in (0.05, 0.1, 0.3):
        router = ArticleRouter(ShardingOptions(8, 4, frac, seed=1))
        lengths = [int(rng.paretovariate(1.5) * 500) for _ in range(3000)]
        test = sum(n for n in lengths if router.route(n)[0] == "test")
        assert abs(test / sum(lengths) - frac) < 0.01 + max(lengths) / sum(lengths)


def test_shards_are_balanced_in_size(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", files=3, articles_per_file=40)
    record = _shard(corpus, tmp_path / "out", frac_test=0.1)
    train = [size for name, size in record["shards"].items() if name.startswith("train")]
    longest_article = max(len(a) + 2 for f in corpus.glob("*.txt") for a in f.read_text().split("\n\n"))
    assert len(train) == 4 and max(train) - min(train) <= longest_article
    assert abs(record["test_chars"] / record["chars"] - 0.1) < 0.05


def test_rerun_with_same_inputs_is_a_no_op_and_changed_options_redo(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", files=1)
    first = _shard(corpus, tmp_path / "out")
    marker = tmp_path / "out" / "train_00000.txt"
    mtime = marker.stat().st_mtime_ns
    assert _shard(corpus, tmp_path / "out") == first and marker.stat().st_mtime_ns == mtime
    _shard(corpus, tmp_path / "out", num_train_shards=2)
    assert [p.name for p in list_text_shards(tmp_path / "out", "train")] == ["train_00000.txt", "train_00001.txt"]


def test_interrupted_sharding_leaves_no_shards_a_later_run_would_trust(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", files=2)
    (corpus / "part_01.txt").write_bytes(b"\xff broken")  # fails after the first file was routed
    with pytest.raises(DataError):
        _shard(corpus, tmp_path / "out")
    assert not (tmp_path / "out" / SHARDING_RECORD).exists()
    assert list_text_shards(tmp_path / "out", "train") == []


def test_corpus_of_only_blank_lines_is_an_error(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("\n \n\r\n", encoding="utf-8")
    with pytest.raises(DataError, match="corpus is empty"):
        _shard(tmp_path / "corpus", tmp_path / "out")


def test_held_out_fraction_without_test_shards_is_an_error(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", files=1)
    with pytest.raises(DataError, match="at least one test shard"):
        _shard(corpus, tmp_path / "out", num_test_shards=0, frac_test=0.1)
