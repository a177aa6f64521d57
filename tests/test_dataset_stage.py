"""The dataset stage as the pipeline runs it, its status, config checks and dataset IDs, and the two CLI scripts."""
import json
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from dataset.stage import dataset_status, prepare_dataset
from pipeline import layout
from orchestration.stages import load_config
from pipeline.errors import ConfigError
from pipeline.run_ids import dataset_settings
from tests.test_dataset_fixtures import write_corpus, write_vocab

REPO = Path(__file__).resolve().parents[1]


def _config(tmp_path, corpus, *opts):
    base = ["SYSTEM.OUTPUT_ROOT", str(tmp_path / "runs"), "DATASET.CUSTOMIZED_DATASETS", f"[{corpus}]",
            "INSTALL.ENABLED", "False", "PRETRAIN.ENABLED", "False", "FINETUNE.ENABLED", "False",
            "RESULT_COLLECTION.ENABLED", "False", "DATASET.NUM_TRAIN_SHARDS", "3", "DATASET.NUM_TEST_SHARDS", "1",
            "DATASET.FRAC_TEST", "0.2", "DATASET.MAX_SEQ_LENGTH", "32", "DATASET.MAX_PREDICTIONS_PER_SEQ", "5",
            "TOKENIZER.TRAIN", "True", "TOKENIZER.VOCAB_SIZE", "150", "TOKENIZER.MIN_FREQUENCY", "1",
            "SYSTEM.MAX_MEMORY_IN_GB", "2", "SYSTEM.NUM_WORKERS", "2"]
    return load_config(None, base + list(opts), base_dir=tmp_path)


@pytest.mark.slow
def test_prepare_dataset_end_to_end_with_trained_tokenizer_hub_source_status_and_resume(tmp_path):
    from transformers import AutoTokenizer

    corpus = write_corpus(tmp_path / "corpus", files=3, articles_per_file=15)
    hub_file = tmp_path / "extra.jsonl"
    hub_file.write_text("\n".join(json.dumps({"text": f"The river school {i}.\nThe music city."}) for i in range(20)))
    cfg = _config(tmp_path, corpus, "DATASET.HUGGINGFACE_DATASETS", f"[[json, {hub_file}]]")
    assert not dataset_status(cfg).complete
    manifest = prepare_dataset(cfg)

    root = layout.dataset_dir(cfg)
    assert dataset_status(cfg).complete
    tokenizer = AutoTokenizer.from_pretrained(str(layout.dataset_tokenizer_dir(cfg)))
    assert manifest["vocab_size"] == len(tokenizer) <= 150 and manifest["masking"] == "dynamic"
    assert (manifest["pad_id"], manifest["cls_id"], manifest["sep_id"], manifest["mask_id"]) == (0, 2, 3, 4)
    assert manifest["max_seq_length"] == 32 and manifest["packing"] == "full_sentences"  # the default
    assert set(manifest["padding"]) == {"train", "test"} and 0 < manifest["padding"]["train"]["padding_share"] < 1
    files = [entry["file"] for entry in manifest["shards"]]
    assert files == ["test_shard_00000.hdf5", "train_shard_00000.hdf5", "train_shard_00001.hdf5",
                     "train_shard_00002.hdf5"]
    for entry in manifest["shards"]:
        with h5py.File(layout.samples_dir(cfg) / entry["file"], "r") as f:
            assert list(f) == ["input_ids"] and f["input_ids"].shape == (entry["samples"], 32)
            assert f.attrs["vocab_size"] == manifest["vocab_size"] and f.attrs["masking"] == "dynamic"
            assert f.attrs["packing"] == "full_sentences"
            assert entry["tokens"] == int((f["input_ids"][:] != 0).sum()) and len(entry["sha256"]) == 64
    texts = {p.name: p.read_text() for p in layout.text_shards_dir(cfg).glob("*.txt")}
    assert any("river school 7" in t for t in texts.values())  # the hub source made it in
    test_share = sum(len(t) for n, t in texts.items() if n.startswith("test")) / sum(map(len, texts.values()))
    assert 0.1 < test_share < 0.3

    # Rerun: nothing is redone. Then an interrupted run (a shard lost): only that shard is written again.
    mtimes = {p.name: p.stat().st_mtime_ns for p in layout.samples_dir(cfg).glob("*.hdf5")}
    assert prepare_dataset(cfg)["shards"] == manifest["shards"]
    assert {p.name: p.stat().st_mtime_ns for p in layout.samples_dir(cfg).glob("*.hdf5")} == mtimes
    (layout.samples_dir(cfg) / "train_shard_00001.hdf5").unlink()
    status = dataset_status(cfg)
    assert not status.complete and "missing" in status.detail
    assert prepare_dataset(cfg)["shards"] == manifest["shards"]
    assert {p.name: p.stat().st_mtime_ns for p in layout.samples_dir(cfg).glob("*.hdf5")
            if p.name != "train_shard_00001.hdf5"} == {k: v for k, v in mtimes.items() if k != "train_shard_00001.hdf5"}
    assert root == tmp_path / "runs" / "datasets" / cfg.DATASET.ID


def test_dataset_id_follows_inputs_and_settings_but_not_workers_or_memory_cap(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", files=1)
    base = _config(tmp_path, corpus).DATASET.ID
    assert _config(tmp_path, corpus).DATASET.ID == base
    assert _config(tmp_path, corpus, "SYSTEM.NUM_WORKERS", "1", "SYSTEM.MAX_MEMORY_IN_GB", "7").DATASET.ID == base
    for opts in (["DATASET.MASKING", "static"], ["SYSTEM.SEED", "1"], ["TOKENIZER.VOCAB_SIZE", "300"],
                 ["DATASET.MAX_SEQ_LENGTH", "64"], ["DATASET.FRAC_TEST", "0.3"]):
        assert _config(tmp_path, corpus, *opts).DATASET.ID != base, opts
    (corpus / "part_00.txt").write_text("changed text\n", encoding="utf-8")
    assert _config(tmp_path, corpus).DATASET.ID != base


def test_packing_enters_the_dataset_id_unless_it_is_the_legacy_document(tmp_path):
    """The default became full_sentences: its data differ from every dataset made before, so it must not keep their
    ID; an explicit document makes the old data and keeps the old ID (PACKING left out, as before it existed)."""
    corpus = write_corpus(tmp_path / "corpus", files=1)
    default, legacy = _config(tmp_path, corpus), _config(tmp_path, corpus, "DATASET.PACKING", "document")
    assert dataset_settings(default)["DATASET"]["PACKING"] == "full_sentences"
    assert "PACKING" not in dataset_settings(legacy)["DATASET"]
    assert default.DATASET.ID != legacy.DATASET.ID
    assert "MASKING_UNIT" not in dataset_settings(default)["DATASET"]  # token: its default, never changed


def test_dataset_id_follows_the_files_of_a_local_tokenizer_and_local_hub_inputs(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", files=1)
    vocab = write_vocab(tmp_path / "tok") / "vocab.txt"
    hub_file = tmp_path / "extra.jsonl"
    hub_file.write_text(json.dumps({"text": "The river school."}) + "\n", encoding="utf-8")
    opts = ["TOKENIZER.TRAIN", "False", "TOKENIZER.NAME_OR_PATH", str(vocab.parent),
            "DATASET.HUGGINGFACE_DATASETS", f"[[json, {hub_file}]]"]
    base = _config(tmp_path, corpus, *opts).DATASET.ID
    assert _config(tmp_path, corpus, *opts).DATASET.ID == base
    vocab.write_text(vocab.read_text(encoding="utf-8") + "newword\n", encoding="utf-8")  # the tokenizer retrained
    retokenized = _config(tmp_path, corpus, *opts).DATASET.ID
    assert retokenized != base
    hub_file.write_text(json.dumps({"text": "Another river school, longer."}) + "\n", encoding="utf-8")
    assert _config(tmp_path, corpus, *opts).DATASET.ID not in (base, retokenized)


def test_a_corpus_changed_in_place_makes_a_fixed_id_dataset_stale_and_it_starts_over(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", files=1)
    cfg = _config(tmp_path, corpus, "DATASET.ID", "my-data")
    prepare_dataset(cfg)
    assert dataset_status(cfg).complete
    with open(corpus / "part_00.txt", "a", encoding="utf-8") as f:
        f.write("\nThe quokka zyxwv sat.\n")
    status = dataset_status(cfg)
    assert not status.complete and status.detail == "settings changed since the last run"
    prepare_dataset(cfg)
    assert "starting it over" in capsys.readouterr().out
    assert dataset_status(cfg).complete
    texts = "".join(p.read_text(encoding="utf-8") for p in layout.text_shards_dir(cfg).glob("*.txt"))
    assert "quokka zyxwv" in texts


def test_config_checks_name_the_key_and_the_fix(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", files=1)
    with pytest.raises(ConfigError) as error:
        _config(tmp_path, corpus, "DATASET.MAX_PREDICTIONS_PER_SEQ", "31", "TOKENIZER.TRAIN", "False",
                "TOKENIZER.NAME_OR_PATH", "./no_such_tokenizer", "DATASET.NUM_TEST_SHARDS", "0",
                "SYSTEM.MAX_MEMORY_IN_GB", "0.2")
    problems = "\n".join(error.value.problems)
    assert "DATASET.MAX_PREDICTIONS_PER_SEQ = 31 exceeds the 30 text tokens" in problems
    assert "TOKENIZER.NAME_OR_PATH: tokenizer folder does not exist" in problems
    assert "DATASET.FRAC_TEST = 0.2 needs DATASET.NUM_TEST_SHARDS >= 1" in problems
    assert "SYSTEM.MAX_MEMORY_IN_GB = 0.2 GB is too small for the dataset stage: it needs at least" in problems


def _run(script, *args):
    return subprocess.run([sys.executable, str(REPO / "dataset" / script), *map(str, args), "--no_progress"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


@pytest.mark.slow
def test_cli_scripts_shard_then_generate_static_samples(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", files=2, articles_per_file=10)
    vocab = write_vocab(tmp_path / "vocab")
    shard = _run("shard_data.py", "--output_dir", tmp_path / "tmp", "--num_train_shards", 2, "--num_test_shards", 1,
                 "--frac_test", 0.1, "--max_memory", 2, "--dataset", "custom", corpus)
    assert shard.returncode == 0, shard.stderr
    generate = _run("generate_samples.py", "--dir", tmp_path / "tmp", "-o", tmp_path / "out", "--masking", "static",
                    "--dup_factor", 2,
                    "--seed", 42, "--do_lower_case", 1, "--masked_lm_prob", 0.15, "--max_seq_length", 32,
                    "--tokenizer_name", vocab, "--max_predictions_per_seq", 5, "--n_processes", 2,
                    "--model_name", "bert-large-uncased", "--max_memory", 2, "--packing", "full_sentences")
    assert generate.returncode == 0, generate.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["packing"] == "full_sentences" and manifest["settings"]["samples"]["packing"] == "full_sentences"
    train = manifest["padding"]["train"]  # full rows but each shard's last: almost no padding, and it is printed
    assert train["rows"] == manifest["train_samples"] and train["padding_share"] < 0.1
    assert train["real_tokens_per_row"] == round(manifest["train_tokens"] / manifest["train_samples"], 2)
    assert f"{train['padding_share']:.1%} padding" in generate.stdout
    assert [e["file"] for e in manifest["shards"]] == ["test_shard_00000.hdf5", "train_shard_00000.hdf5",
                                                       "train_shard_00001.hdf5"]
    with h5py.File(tmp_path / "out" / "train_shard_00000.hdf5", "r") as f:
        assert f.attrs["masking"] == "static" and f["masked_lm_positions"].shape[1] == 5


def test_cli_bad_input_is_a_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _run("shard_data.py", "--output_dir", tmp_path / "tmp", "--dataset", "custom", tmp_path / "empty")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "error: corpus folder" in result.stderr
    result = _run("generate_samples.py", "--dir", tmp_path / "tmp", "-o", tmp_path / "out", "--tokenizer_name", "x",
                  "--max_memory", 0.1)
    assert result.returncode == 2 and "error: --max_memory = 0.1 GB is too small" in result.stderr  # a setting: 2


def test_fixed_dataset_id_reused_with_other_settings_starts_over(tmp_path):
    from dataset.stage import _start_fresh_if_settings_changed

    root = tmp_path / "datasets" / "fixed"
    (root / "samples").mkdir(parents=True)
    (root / "samples" / "train_shard_00000.hdf5").write_bytes(b"old")
    _start_fresh_if_settings_changed(root, {"DATASET": {"MASKING": "static"}})
    assert (root / "samples" / "train_shard_00000.hdf5").exists()  # first run: nothing to compare with
    _start_fresh_if_settings_changed(root, {"DATASET": {"MASKING": "static"}})
    assert (root / "samples" / "train_shard_00000.hdf5").exists()  # same settings: resume
    _start_fresh_if_settings_changed(root, {"DATASET": {"MASKING": "dynamic"}})
    assert not (root / "samples").exists()
