"""A complete dataset is looked at before it is skipped: a shard truncated on disk makes the runner redo it, and the
shard comes back byte for byte, so pretraining reads the data the manifest describes; main.py --verify (``deep``)
also catches a changed byte that keeps the file's size."""
from dataset.stage import dataset_status
from orchestration.runner import run_pipeline
from pipeline import layout
from pipeline.manifest import read_manifest
from pipeline.run_ids import samples_identity
from tests.test_dataset_fixtures import write_corpus
from tests.test_dataset_stage import _config


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def test_truncated_shards_are_redone_on_the_next_run_and_verify_finds_a_changed_byte(tmp_path, capsys):
    cfg = _config(tmp_path, write_corpus(tmp_path / "corpus", files=2, articles_per_file=10), "SYSTEM.NUM_GPUS", "0")
    assert run_pipeline(cfg) == 0
    sample, text = layout.samples_dir(cfg) / "train_shard_00001.hdf5", layout.text_shards_dir(cfg) / "train_00001.txt"
    originals = {path: path.read_bytes() for path in (sample, text)}
    identity = samples_identity(layout.samples_dir(cfg))
    for path in originals:
        _truncate(path)

    status = dataset_status(cfg)
    assert not status.complete
    assert status.detail == ("outputs missing or changed since they were written: samples/train_shard_00001.hdf5, "
                             "text_shards/train_00001.txt")
    assert run_pipeline(cfg) == 0
    assert "[done] dataset" in capsys.readouterr().out
    assert {path: path.read_bytes() for path in originals} == originals
    assert samples_identity(layout.samples_dir(cfg)) == identity
    assert dataset_status(cfg).complete

    flipped = bytearray(originals[sample])
    flipped[len(flipped) // 2] ^= 0xFF
    sample.write_bytes(bytes(flipped))
    assert dataset_status(cfg).complete  # the size is right: only hashing sees it
    assert not dataset_status(cfg, deep=True).complete
    assert run_pipeline(cfg, deep=True) == 0
    assert sample.read_bytes() == originals[sample]
    assert read_manifest(layout.dataset_dir(cfg))["files"]["samples/train_shard_00001.hdf5"]["bytes"] == len(
        originals[sample])

    _truncate(layout.dataset_tokenizer_dir(cfg) / "tokenizer.json")  # the samples were made with it: all go
    root = layout.dataset_dir(cfg)
    assert dataset_status(cfg).damaged == [str(root / "tokenizer"), str(root / "samples")]
