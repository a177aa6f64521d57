"""Text shards -> HDF5 samples: format, packing rules, static/dynamic masking, determinism, resume, failures."""
import os

import h5py
import numpy as np
import pytest

from dataset import memory
from dataset.sample_file import SampleOptions, ShardJob, write_shard
from dataset.sample_jobs import generate_samples
from dataset.workers import run_jobs
from pipeline.errors import ConfigError, DataError
from tests.test_dataset_fixtures import make_article, tiny_tokenizer  # noqa: F401  (fixture)

LENGTH = 24


def _text_shard(path, articles):
    path.write_text("".join("\n".join(a) + "\n\n" for a in articles), encoding="utf-8")
    return path


def _random_articles(n=40, seed=0):
    import random

    rng = random.Random(seed)
    return [make_article(rng, rng.randint(1, 8)) for _ in range(n)]


def _write(tmp_path, tokenizer, articles, name="train_00000.txt", batch_chars=1 << 20, **options):
    tokenizer_dir, info = tokenizer
    text = _text_shard(tmp_path / name, articles)
    split = "train" if name.startswith("train") else "test"
    out = tmp_path / f"{name}.{batch_chars}.{options.get('masking', 'dynamic')}.hdf5"
    job = ShardJob(text_path=str(text), out_path=str(out), split=split, shard_index=0,
                   tokenizer_file=str(tokenizer_dir / "tokenizer.json"), tokenizer_info=info,
                   options=SampleOptions(**{"max_seq_length": LENGTH, "max_predictions_per_seq": 4,
                                            "packing": "document", **options}),  # the rows most tests check
                   batch_chars=batch_chars)
    return write_shard(job), out


def _read(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in f}, dict(f.attrs)


def test_static_shard_has_the_bert_fields_shapes_and_compact_dtypes(tmp_path, tiny_tokenizer):
    entry, path = _write(tmp_path, tiny_tokenizer, _random_articles(), masking="static", dup_factor=2)
    data, attrs = _read(path)
    n = entry["samples"]
    assert set(data) == {"input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids"}
    assert data["input_ids"].shape == (n, LENGTH) and data["input_ids"].dtype == np.uint16
    assert data["input_mask"].shape == (n, LENGTH) and data["input_mask"].dtype == np.uint8
    assert data["segment_ids"].dtype == np.uint8 and not data["segment_ids"].any()
    assert data["masked_lm_positions"].shape == (n, 4) and data["masked_lm_positions"].dtype == np.uint16
    assert data["masked_lm_ids"].shape == (n, 4) and data["masked_lm_ids"].dtype == np.uint16
    assert np.array_equal(data["input_mask"], (data["input_ids"] != 0).astype(np.uint8))
    info = tiny_tokenizer[1]
    assert attrs["masking"] == "static" and attrs["vocab_size"] == info["vocab_size"]
    assert attrs["max_seq_length"] == LENGTH and attrs["max_predictions_per_seq"] == 4
    assert (attrs["pad_id"], attrs["cls_id"], attrs["sep_id"], attrs["mask_id"]) == (0, 2, 3, 4)
    assert attrs["masked_lm_prob"] == pytest.approx(0.15)
    assert entry["tokens"] == int((data["input_ids"] != 0).sum())


def test_dynamic_shard_stores_token_ids_only(tmp_path, tiny_tokenizer):
    _, path = _write(tmp_path, tiny_tokenizer, _random_articles(), masking="dynamic")
    data, attrs = _read(path)
    assert set(data) == {"input_ids"} and attrs["masking"] == "dynamic"
    assert data["input_ids"].dtype == np.uint16 and data["input_ids"].shape[1] == LENGTH
    assert not (data["input_ids"] == tiny_tokenizer[1]["mask_id"]).any()


def test_rows_are_cls_text_sep_then_padding(tmp_path, tiny_tokenizer):
    _, path = _write(tmp_path, tiny_tokenizer, _random_articles())
    ids = _read(path)[0]["input_ids"]
    assert (ids[:, 0] == 2).all()
    for row in ids:
        real = int((row != 0).sum())
        assert row[real - 1] == 3 and (row[real:] == 0).all() and (row[1:real - 1] > 4).all()
    assert (ids[:, -1] == 3).mean() > 0.5  # most rows are full


def test_each_row_holds_consecutive_text_of_one_article(tmp_path, tiny_tokenizer):
    tokenizer_dir, info = tiny_tokenizer
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    articles = [["river " * 30], ["music " * 7, "music " * 5], ["city " * 50]]
    _, path = _write(tmp_path, tiny_tokenizer, articles)
    ids = _read(path)[0]["input_ids"]
    river, music, city = (tok.token_to_id(w) for w in ("river", "music", "city"))
    rows = [set(row[1:][(row[1:] != 0) & (row[1:] != 3)].tolist()) for row in ids]
    assert rows == [{river}, {river}, {music}, {city}, {city}, {city}]  # 30 -> 22+8, 12, 50 -> 22+22+6


def test_lines_of_an_article_are_joined_with_a_space_never_glued(tmp_path, tiny_tokenizer):
    tokenizer_dir, _ = tiny_tokenizer
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    _, path = _write(tmp_path, tiny_tokenizer, [["the river", "music school"]])
    row = _read(path)[0]["input_ids"][0]
    expected = tok.encode("the river music school", add_special_tokens=False).ids
    assert row[1:1 + len(expected)].tolist() == expected and 1 not in row  # no [UNK] from "rivermusic"


def test_static_masks_restore_to_the_dynamic_rows_and_dup_factor_masks_differently(tmp_path, tiny_tokenizer):
    articles = _random_articles(60)
    _, dynamic_path = _write(tmp_path, tiny_tokenizer, articles)
    _, static_path = _write(tmp_path, tiny_tokenizer, articles, masking="static", dup_factor=3)
    original = _read(dynamic_path)[0]["input_ids"]
    static = _read(static_path)[0]
    assert len(static["input_ids"]) == 3 * len(original)
    restored = static["input_ids"].copy()
    for i in range(len(restored)):
        used = static["masked_lm_ids"][i] != 0
        restored[i, static["masked_lm_positions"][i][used]] = static["masked_lm_ids"][i][used]
    copies = restored.reshape(3, -1, LENGTH)  # one block (< 1024 rows): copy after copy
    assert all(np.array_equal(copy, original) for copy in copies)
    positions = static["masked_lm_positions"].reshape(3, -1, 4)
    assert not np.array_equal(positions[0], positions[1])


def test_test_shards_get_a_single_masked_copy(tmp_path, tiny_tokenizer):
    articles = _random_articles(20)
    dynamic, _ = _write(tmp_path, tiny_tokenizer, articles, name="test_00000.txt")
    static, _ = _write(tmp_path, tiny_tokenizer, articles, name="test_00000.txt", masking="static", dup_factor=5)
    assert static["samples"] == dynamic["samples"]


def test_text_batch_size_does_not_change_the_output(tmp_path, tiny_tokenizer):
    articles = _random_articles(80, seed=3)
    small, _ = _write(tmp_path, tiny_tokenizer, articles, batch_chars=37, masking="static", dup_factor=2)
    large, _ = _write(tmp_path, tiny_tokenizer, articles, batch_chars=1 << 20, masking="static", dup_factor=2)
    assert small["sha256"] == large["sha256"] and small["samples"] > 0


def _shards_folder(tmp_path, n=3):
    folder = tmp_path / "text"
    folder.mkdir()
    for i in range(n):
        _text_shard(folder / f"train_{i:05d}.txt", _random_articles(30, seed=i))
    _text_shard(folder / f"test_{0:05d}.txt", _random_articles(10, seed=99))
    return folder


def test_output_does_not_depend_on_worker_count_or_memory_cap_and_rerun_resumes(tmp_path, tiny_tokenizer):
    text = _shards_folder(tmp_path)
    options = SampleOptions(max_seq_length=LENGTH, masking="static", max_predictions_per_seq=4, dup_factor=2)
    one = generate_samples(text, tmp_path / "one", tiny_tokenizer[0], options, 1, 1.0, progress=False)
    two = generate_samples(text, tmp_path / "two", tiny_tokenizer[0], options, 2, 8.0, progress=False)
    assert [e["file"] for e in one] == ["test_shard_00000.hdf5", "train_shard_00000.hdf5", "train_shard_00001.hdf5",
                                        "train_shard_00002.hdf5"]
    assert one == two

    # An interrupted run: one shard missing, a half-written file left behind.
    out = tmp_path / "two"
    (out / "train_shard_00001.hdf5").unlink()
    (out / ".train_shard_00002.hdf5.partial").write_bytes(b"half")
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("*.hdf5")}
    again = generate_samples(text, out, tiny_tokenizer[0], options, 2, 8.0, progress=False)
    assert again == one
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.hdf5") if p.name in kept} == kept
    assert not list(out.glob(".*"))


def test_a_rerun_with_another_packing_rewrites_the_shards_made_the_other_way(tmp_path, tiny_tokenizer, caplog):
    text = _shards_folder(tmp_path, n=1)
    out = tmp_path / "out"
    legacy = SampleOptions(max_seq_length=LENGTH, max_predictions_per_seq=4, packing="document")
    before = generate_samples(text, out, tiny_tokenizer[0], legacy, 1, 1.0, progress=False)
    assert "packing" not in _read(out / "train_shard_00000.hdf5")[1]  # as every file before the attribute existed
    packed = SampleOptions(max_seq_length=LENGTH, max_predictions_per_seq=4)  # the default: full_sentences
    after = generate_samples(text, out, tiny_tokenizer[0], packed, 1, 1.0, progress=False)
    assert _read(out / "train_shard_00000.hdf5")[1]["packing"] == "full_sentences"
    assert after[1]["samples"] < before[1]["samples"]  # fuller rows, fewer of them
    assert "train_shard_00000.hdf5: made with other packing: writing it again" in caplog.text
    caplog.clear()
    assert generate_samples(text, out, tiny_tokenizer[0], packed, 1, 1.0, progress=False) == after
    assert "writing it again" not in caplog.text


def test_a_shard_that_is_mostly_unknown_tokens_gets_a_warning_naming_its_text_file(tmp_path, tiny_tokenizer, capsys):
    text = _shards_folder(tmp_path, n=2)
    foreign = ["Το κείμενο είναι ελληνικό και ο λεξιλόγιο δεν το ξέρει.", "the of and to in is was for on as."]
    _text_shard(text / "train_00001.txt", [foreign] * 20)  # half of its lines in a script the vocabulary lacks
    options = SampleOptions(max_seq_length=LENGTH, max_predictions_per_seq=4)
    entries = generate_samples(text, tmp_path / "out", tiny_tokenizer[0], options, 1, 1.0, progress=False)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {text / 'train_00001.txt'}: ")
    assert "are [UNK] (in train_shard_00001.hdf5): the tokenizer does not cover this text" in warnings[0]
    by_file = {entry["file"]: entry for entry in entries}
    assert by_file["train_shard_00001.hdf5"]["unk_tokens"] > 0.05 * by_file["train_shard_00001.hdf5"]["text_tokens"]
    assert by_file["train_shard_00000.hdf5"]["unk_tokens"] == 0


def test_a_failing_shard_fails_the_run_naming_its_file(tmp_path, tiny_tokenizer):
    text = _shards_folder(tmp_path, n=2)
    (text / "train_00001.txt").write_bytes(b"good line\n\xff\xfe bad\n")
    options = SampleOptions(max_seq_length=LENGTH, max_predictions_per_seq=4)
    with pytest.raises(DataError, match="train_00001.txt"):
        generate_samples(text, tmp_path / "out", tiny_tokenizer[0], options, 2, 8.0, progress=False)
    assert not (tmp_path / "out" / "train_shard_00001.hdf5").exists()


def _exit_abruptly(job):
    os._exit(3)


def test_a_worker_that_dies_fails_the_run_naming_its_job():
    with pytest.raises(DataError, match="died while processing shard-7"):
        list(run_jobs(_exit_abruptly, ["shard-7"], 1, str))


def test_no_train_text_shards_is_an_error(tmp_path, tiny_tokenizer):
    (tmp_path / "text").mkdir()
    with pytest.raises(DataError, match="no training text shards"):
        generate_samples(tmp_path / "text", tmp_path / "out", tiny_tokenizer[0], SampleOptions(), 1, 4.0,
                         progress=False)


def test_memory_cap_too_small_is_an_up_front_error_stating_the_minimum():
    minimum = memory.minimum_bytes() / memory.GB
    with pytest.raises(ConfigError, match=rf"--max_memory = 0.1 GB is too small.*at least {minimum:.2f} GB"):
        memory.check_memory_cap(0.1, "--max_memory")
    memory.check_memory_cap(minimum + 0.01, "--max_memory")


def test_worker_pool_is_sized_so_that_workers_fit_under_the_cap():
    main = memory.main_process_bytes()  # this test process and its children, e.g. a finetuning job server
    for cap in (main / memory.GB + extra for extra in (0.5, 1.0, 15.0)):
        workers = memory.plan_workers(cap, requested=64, jobs=1000, key="k")
        assert workers >= 1 and main + workers * memory.worker_bytes() <= cap * memory.GB + memory.MB
    assert memory.plan_workers(16.0, requested=8, jobs=3, key="k") == 3
    assert memory.plan_workers(16.0, requested=2, jobs=100, key="k") == 2


def test_vocabulary_training_that_would_not_fit_under_the_cap_is_an_up_front_error():
    with pytest.raises(ConfigError, match=r"training the vocabulary on 2000 M characters needs about .* "
                                          r"set TOKENIZER.TRAIN_MAX_CHARS to at most \d+"):
        memory.check_tokenizer_training(1.0, "SYSTEM.MAX_MEMORY_IN_GB", 2_000_000_000)
    memory.check_tokenizer_training(4.0, "SYSTEM.MAX_MEMORY_IN_GB", 100_000_000)


def _words_of(tokenizer_dir, *words):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    return [tok.token_to_id(w) for w in words]


def test_full_sentences_fills_rows_across_articles_with_a_sep_between_and_pads_only_the_last_row(tmp_path,
                                                                                                  tiny_tokenizer):
    river, music, city = _words_of(tiny_tokenizer[0], "river", "music", "city")
    articles = [["river " * 30], ["music " * 4, "music " * 3], ["city " * 50]]
    _, path = _write(tmp_path, tiny_tokenizer, articles, packing="full_sentences")
    ids = _read(path)[0]["input_ids"]
    # One stream of 30 + 1 + 7 + 1 + 50 = 89 tokens in bodies of 22: four full rows, then one token in the last row.
    assert (ids[:, 0] == 2).all() and (ids[:4, -1] == 3).all() and not (ids[:4] == 0).any()
    assert ids[4, :3].tolist() == [2, city, 3] and not ids[4, 3:].any()
    assert ids[1, 1:-1].tolist() == [river] * 8 + [3] + [music] * 7 + [3] + [city] * 5  # an article's rest, then on
    stream = np.concatenate([row[1:-1] for row in ids[:4]] + [ids[4, 1:2]])
    assert stream.tolist() == [river] * 30 + [3] + [music] * 7 + [3] + [city] * 50


def test_full_sentences_opens_no_row_with_a_separator(tmp_path, tiny_tokenizer):
    river, music = _words_of(tiny_tokenizer[0], "river", "music")
    _, path = _write(tmp_path, tiny_tokenizer, [["river " * 22], ["music " * 3]], packing="full_sentences")
    ids = _read(path)[0]["input_ids"]
    assert ids[0].tolist() == [2] + [river] * 22 + [3]
    assert ids[1, :5].tolist() == [2, music, music, music, 3] and not ids[1, 5:].any()


def test_full_sentences_rows_are_deterministic_and_masking_never_picks_a_separator(tmp_path, tiny_tokenizer):
    from pretraining.data.loader import IGNORE_INDEX, dynamic_mask

    articles = _random_articles(80, seed=5)
    options = dict(packing="full_sentences", masking="static", dup_factor=2)
    small, static_path = _write(tmp_path, tiny_tokenizer, articles, batch_chars=37, **options)
    large, _ = _write(tmp_path, tiny_tokenizer, articles, batch_chars=1 << 20, **options)
    assert small["sha256"] == large["sha256"]
    static = _read(static_path)[0]
    assert (static["input_ids"] == 0).any(axis=1).sum() <= 2  # at most the last row of each copy is padded
    assert (static["input_ids"][:, 1:-1] == 3).sum() > 40  # separators inside the rows, between articles
    used = static["masked_lm_positions"] > 0
    assert used.any() and not np.isin(static["masked_lm_ids"][used], [0, 2, 3]).any()

    _, dynamic_path = _write(tmp_path, tiny_tokenizer, articles, packing="full_sentences")
    rows = _read(dynamic_path)[0]["input_ids"]
    info = tiny_tokenizer[1]
    _, labels = dynamic_mask(rows, np.random.default_rng(0), masked_lm_prob=0.15, max_predictions_per_seq=4,
                             pad_id=0, cls_id=2, sep_id=3, mask_id=4,
                             replacement_ids=np.arange(5, info["vocab_size"]))
    assert (labels != IGNORE_INDEX).any() and (labels[rows == 3] == IGNORE_INDEX).all()


def test_padding_share_and_real_tokens_per_row_per_split():
    from dataset.sample_jobs import padding_by_split, padding_line

    entries = [{"split": "train", "samples": 3, "tokens": 30}, {"split": "train", "samples": 1, "tokens": 10},
               {"split": "test", "samples": 2, "tokens": 20}]
    padding = padding_by_split(entries, max_seq_length=20)
    assert padding == {"train": {"rows": 4, "real_tokens_per_row": 10.0, "padding_share": 0.5},
                       "test": {"rows": 2, "real_tokens_per_row": 10.0, "padding_share": 0.5}}
    assert padding_line(padding, "document") == ("samples (document packing): train 4 rows, 10.0 real tokens per row,"
                                                 " 50.0% padding; test 2 rows, 10.0 real tokens per row, 50.0% padding")
