"""Reading raw corpora: article boundaries, line endings, encodings, hub entries (split, revision) and every
bad-input case."""
import pytest

from dataset import corpus_readers
from dataset.corpus_readers import (corpus_bytes, iter_articles, iter_custom_articles, iter_file_lines,
                                    sources_from_lists)
from pipeline.errors import DataError


def _articles(folder, **kwargs):
    return list(iter_custom_articles(folder, **kwargs))


def test_blank_and_whitespace_only_lines_separate_articles(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\n\nthree\n   \t \nfour\nfive\n\n\n\nsix", encoding="utf-8")
    assert _articles(tmp_path) == [["one", "two"], ["three"], ["four", "five"], ["six"]]


def test_crlf_line_endings_are_handled_like_lf(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"one\r\ntwo\r\n\r\nthree\r\n \r\nfour\r\n")
    assert _articles(tmp_path) == [["one", "two"], ["three"], ["four"]]


def test_each_file_ends_an_article_and_files_are_read_in_sorted_order(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("bee", encoding="utf-8")
    (tmp_path / "a.txt").write_text("ay\nstill ay", encoding="utf-8")
    (tmp_path / "sub" / "c.txt").write_text("sea", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored", encoding="utf-8")
    assert _articles(tmp_path) == [["ay", "still ay"], ["bee"], ["sea"]]


def test_utf8_bom_is_dropped(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbfhello\n")
    assert _articles(tmp_path) == [["hello"]]


def test_non_utf8_file_is_an_error_naming_file_and_byte_offset(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"fine line\nsecond \xff line\n")
    with pytest.raises(DataError, match=r"bad\.txt is not valid UTF-8 at byte offset 17.*replace"):
        _articles(tmp_path)


def test_encoding_errors_replace_keeps_going(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"second \xff line\n")
    assert _articles(tmp_path, encoding_errors="replace") == [["second \ufffd line"]]
    assert _articles(tmp_path, encoding_errors="ignore") == [["second  line"]]


def test_a_binary_file_read_with_replace_is_named_in_a_warning_and_a_few_bad_bytes_are_not(tmp_path, capsys):
    import random

    (tmp_path / "photo.txt").write_bytes(random.Random(0).randbytes(4000))  # a JPEG someone named .txt
    (tmp_path / "notes.txt").write_bytes(b"a sentence of plain text " * 8 + b"\xff\n")  # 1 bad byte in 201
    _articles(tmp_path, encoding_errors="replace")
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {tmp_path / 'photo.txt'}: ")
    assert "%) are U+FFFD, bytes that are not UTF-8 (ENCODING_ERRORS replace)" in warnings[0]


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match="is empty"):
        _articles(tmp_path)


def test_folder_without_txt_files_is_an_error(tmp_path):
    (tmp_path / "corpus.csv").write_text("a,b", encoding="utf-8")
    with pytest.raises(DataError, match=r"holds no \.txt files"):
        _articles(tmp_path)


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        _articles(tmp_path / "nope")


def test_overlong_line_is_cut_at_whitespace_without_losing_text(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_readers, "MAX_LINE_BYTES", 64)
    words = [f"w{i}" for i in range(200)]
    (tmp_path / "a.txt").write_text(" ".join(words) + "\n\nnext\n", encoding="utf-8")
    lines = list(iter_file_lines(tmp_path / "a.txt"))
    assert max(len(line) for line in lines) <= 128
    assert " ".join(lines[:-2]).split() == words  # nothing lost or glued
    assert lines[-2:] == ["", "next"]


def test_overlong_line_without_whitespace_is_cut_between_utf8_characters(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_readers, "MAX_LINE_BYTES", 10)
    text = "é" * 40  # 2 bytes each: a cut at byte 10 of a raw chunk may fall inside a character
    (tmp_path / "a.txt").write_bytes(b"x" + text.encode() + b"\n")
    lines = list(iter_file_lines(tmp_path / "a.txt"))
    assert "".join(lines) == "x" + text


def test_article_longer_than_the_limit_is_split_into_consecutive_articles(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_readers, "MAX_ARTICLE_CHARS", 50)
    lines = [f"line number {i:02d}" for i in range(10)]  # 14 chars each
    (tmp_path / "a.txt").write_text("\n".join(lines), encoding="utf-8")
    stats = {}
    articles = list(iter_custom_articles(tmp_path, stats=stats))
    assert len(articles) > 1 and stats["articles_split"] == len(articles) - 1
    assert [line for a in articles for line in a] == lines
    assert all(sum(map(len, a)) <= 50 for a in articles)


def test_the_sharding_progress_total_is_the_corpus_bytes_and_reading_reaches_it(tmp_path):
    """Folders of files: the total is known before reading (CRLF, a BOM, blank lines and a last line without a
    newline all count), and the bytes read end exactly at it; a streamed hub dataset has no total."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbfOne line.\r\n\r\nSecond article\n")
    (tmp_path / "sub" / "b.txt").write_text("caf\u00e9 au lait\n\n\nlast line, no newline", encoding="utf-8")
    sources = sources_from_lists([tmp_path], [])
    assert corpus_bytes(sources) == 31 + 37
    stats = {}
    assert len(list(iter_articles(sources, stats=stats))) == 4 and stats["bytes_read"] == 31 + 37
    assert corpus_bytes(sources_from_lists([tmp_path], [["text", str(tmp_path / "a.txt")]])) is None


def test_hub_path_reads_records_as_articles_through_a_local_builder(tmp_path):
    import json

    records = [{"text": "First article.\nIts second line."}, {"text": ""}, {"text": "Second\n\narticle."}]
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    sources = sources_from_lists([], [["json", str(data)]])
    stats = {}
    assert list(iter_articles(sources, stats=stats)) == [["First article.", "Its second line."], ["Second", "article."]]
    assert stats["bytes_read"] == len("First article.\nIts second line.Second\n\narticle.")  # the texts' bytes


def test_hub_text_builder_treats_empty_rows_as_article_breaks(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("a one\na two\n\nb one\n", encoding="utf-8")
    assert list(iter_articles(sources_from_lists([], [["text", str(data)]]))) == [["a one", "a two"], ["b one"]]


def test_hub_dataset_missing_text_column_names_the_columns(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"body": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"no column 'text' \(columns: body\)"):
        list(iter_articles(sources_from_lists([], [["json", str(data)]])))


def test_unreachable_hub_dataset_is_a_one_line_error():
    with pytest.raises(DataError, match="cannot read hub dataset no-such-user/no-such-dataset"):
        list(iter_articles(sources_from_lists([], [["no-such-user/no-such-dataset", "x"]])))


def _write_parquet(path, texts):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"title": [f"t{i}" for i in range(len(texts))], "text": texts}), path)


def test_hub_reader_reads_the_split_the_entry_names_from_a_parquet_repo(tmp_path):
    _write_parquet(tmp_path / "repo" / "data" / "train-00000-of-00001.parquet", ["train one\ntrain two"])
    _write_parquet(tmp_path / "repo" / "data" / "validation-00000-of-00001.parquet", ["held out"])
    repo = str(tmp_path / "repo")
    assert list(iter_articles(sources_from_lists([], [[repo, ""]]))) == [["train one", "train two"]]
    assert list(iter_articles(sources_from_lists([], [[repo, "", "text", "split=validation"]]))) == [["held out"]]


def test_hub_reader_reads_one_subset_folder_of_a_parquet_export(tmp_path):
    # The layout of a repo's refs/convert/parquet revision: <subset>/<split>/NNNN.parquet, "partial-" when cut short.
    _write_parquet(tmp_path / "export" / "20220301.en" / "partial-train" / "0000.parquet", ["English"])
    _write_parquet(tmp_path / "export" / "20220301.de" / "train" / "0000.parquet", ["Deutsch"])
    entry = [str(tmp_path / "export"), "20220301.en", "text", "revision=refs/convert/parquet"]
    assert list(iter_articles(sources_from_lists([], [entry]))) == [["English"]]
