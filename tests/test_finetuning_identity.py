"""What makes a finetuning job complete: its record names the grid values, the settings and the stamps of the files
it read (the GLUE files of its task, the model it started from). Jobs are marked complete here by hand, as the stage
records them, so that no training runs."""
import json
import os

from finetuning.stage import _Search, finetune_status
from pipeline import layout
from tests.test_finetuning_fixtures import finetune_config, write_glue


def _model_folder(folder):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    return folder


def _complete(search, job, init_from=None):
    """Record ``job`` as the stage does when it completes (the record is taken before the job runs)."""
    job_dir = search.job_dir(job)
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "job.json").write_text(json.dumps({**search.expected(job, init_from), "status": "completed"}))
    (job_dir / "eval_results.json").write_text(json.dumps({"mcc": 0.4, "accuracy": 0.6}))
    return job_dir


def _edit(path, old, new):
    """Rewrite ``path`` with ``old`` replaced, its mtime a second later (as an edit after the jobs ran would be)."""
    before = path.stat().st_mtime_ns
    path.write_bytes(path.read_bytes().replace(old, new))
    os.utime(path, ns=(before + 10 ** 9, before + 10 ** 9))


def _search(cfg):
    return _Search(cfg, layout.finetune_dir(cfg), False)


def test_edited_glue_data_reruns_only_its_tasks_jobs_and_an_edited_model_reruns_all(tmp_path):
    glue = write_glue(tmp_path / "glue", tasks=["CoLA", "RTE"])
    model = _model_folder(tmp_path / "model")
    cfg = finetune_config(tmp_path, model, glue, **{"FINETUNE.TASKS": "[CoLA, RTE]", "FINETUNE.SEEDS": "[1, 2]",
                                                    "FINETUNE.STILT.ENABLED": False})
    search = _search(cfg)
    for job in search.jobs["CoLA"] + search.jobs["RTE"]:
        _complete(search, job)
    assert finetune_status(cfg).complete

    # Labels flipped in CoLA's training file: the same size, other content.
    _edit(glue / "CoLA" / "train.tsv", b"gj04\t1\t", b"gj04\tX\t")
    _edit(glue / "CoLA" / "train.tsv", b"gj04\t0\t", b"gj04\t1\t")
    _edit(glue / "CoLA" / "train.tsv", b"gj04\tX\t", b"gj04\t0\t")
    status = finetune_status(cfg)
    assert not status.complete and status.detail == "2/4 jobs completed"
    assert _search(cfg).pending(["CoLA", "RTE"]) == search.jobs["CoLA"]  # RTE's files did not change: skipped

    _edit(glue / "RTE" / "test.tsv", b"\n0\t", b"\n0\t")  # touched only, yet the file's stamp is new
    assert _search(cfg).pending(["RTE"]) == search.jobs["RTE"]
    for job in search.jobs["CoLA"] + search.jobs["RTE"]:
        _complete(search, job)
    assert finetune_status(cfg).complete

    _edit(model / "model.safetensors", b"weights", b"retrained")
    assert _search(cfg).pending(["CoLA", "RTE"]) == search.jobs["CoLA"] + search.jobs["RTE"]


def test_stilt_targets_rerun_when_the_source_jobs_saved_model_changes(tmp_path):
    glue = write_glue(tmp_path / "glue", tasks=["MNLI", "RTE"])
    cfg = finetune_config(tmp_path, _model_folder(tmp_path / "model"), glue,
                          **{"FINETUNE.TASKS": "[MNLI, RTE]", "FINETUNE.STILT.TARGETS": "[RTE]"})
    search = _search(cfg)
    (source,) = search.jobs["MNLI"]
    _model_folder(_complete(search, source) / "model")
    init_from = search.stilt_init()
    assert init_from == f"MNLI/{source.name}"
    for job in search.jobs["RTE"]:
        _complete(search, job, init_from)
    assert finetune_status(cfg).complete

    _edit(search.job_dir(source) / "model" / "config.json", b"bert", b"BERT")
    assert _search(cfg).pending(["RTE"], init_from) == search.jobs["RTE"]
    assert _search(cfg).pending(["MNLI"]) == []  # its own inputs are unchanged


def test_a_record_without_input_stamps_from_an_older_version_is_not_complete(tmp_path):
    glue = write_glue(tmp_path / "glue", tasks=["RTE"])
    cfg = finetune_config(tmp_path, _model_folder(tmp_path / "model"), glue,
                          **{"FINETUNE.TASKS": "[RTE]", "FINETUNE.STILT.ENABLED": False})
    search = _search(cfg)
    (job,) = search.jobs["RTE"]
    record = json.loads((_complete(search, job) / "job.json").read_text())
    assert set(record["inputs"]) == {"model", "data"}
    assert [entry[0] for entry in record["inputs"]["data"]] == ["RTE/train.tsv", "RTE/dev.tsv", "RTE/test.tsv"]
    del record["inputs"]
    (search.job_dir(job) / "job.json").write_text(json.dumps(record))
    assert not finetune_status(cfg).complete
