"""Small real stages for testing the runner's mechanics (skip, force, failure) without the heavy stages.

Each stage appends a line to ``calls.log`` in the output root, writes its output and a manifest, as real stages do.
"""
from pathlib import Path

from pipeline.errors import DataError
from pipeline.manifest import write_manifest
from pipeline.runner import Stage
from pipeline.stage_status import manifest_status


def _stage_dir(cfg, name):
    return Path(cfg.SYSTEM.OUTPUT_ROOT) / name


def _settings(cfg):
    return {"seed": cfg.SYSTEM.SEED}


def _run(cfg, name, settings=None):
    calls = Path(cfg.SYSTEM.OUTPUT_ROOT) / "calls.log"
    with open(calls, "a") as f:
        f.write(name + "\n")
    out = _stage_dir(cfg, name)
    out.mkdir(parents=True, exist_ok=True)
    # The call count makes every run's output differ, as a rebuilt dataset's would.
    (out / "output.txt").write_text(f"{name} output, call {len(calls.read_text().split())}\n")
    print(f"{name}: wrote {out / 'output.txt'}")
    write_manifest(out, name, settings or _settings(cfg))


def _reader_settings(cfg):
    """A stage whose settings include what the stage "first" wrote, as pretraining's include the samples' identity."""
    source = _stage_dir(cfg, "first") / "output.txt"
    return {**_settings(cfg), "input": source.read_text() if source.exists() else None}


def reader(cfg):
    _run(cfg, "reader", _reader_settings(cfg))


def reader_status(cfg):
    out = _stage_dir(cfg, "reader")
    return manifest_status(out, _reader_settings(cfg), reads=[], writes=[out],
                           outputs_ok=lambda: (out / "output.txt").exists())


def first(cfg):
    _run(cfg, "first")


def second(cfg):
    _run(cfg, "second")


def failing(cfg):
    print("failing: about to fail")
    raise DataError("the corpus folder /nowhere is empty")


def _status(cfg, name):
    out = _stage_dir(cfg, name)
    return manifest_status(out, _settings(cfg), reads=[], writes=[out],
                           outputs_ok=lambda: (out / "output.txt").exists())


def first_status(cfg):
    return _status(cfg, "first")


def second_status(cfg):
    return _status(cfg, "second")


def failing_status(cfg):
    return _status(cfg, "failing")


MODULE = "tests.runner_test_stages"
TWO_STAGES = (Stage("first", "DATASET", MODULE, "first", "first_status"),
              Stage("second", "PRETRAIN", MODULE, "second", "second_status"))
WITH_READER = (Stage("first", "DATASET", MODULE, "first", "first_status"),
               Stage("reader", "PRETRAIN", MODULE, "reader", "reader_status"))
WITH_FAILURE = (Stage("first", "DATASET", MODULE, "first", "first_status"),
                Stage("failing", "PRETRAIN", MODULE, "failing", "failing_status"),
                Stage("second", "FINETUNE", MODULE, "second", "second_status"))
