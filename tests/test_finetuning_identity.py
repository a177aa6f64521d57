"""What makes a finetuning job complete: its record names the grid values, the settings and the stamps of the files
it read (the GLUE files of its task, the model it started from). Jobs are marked complete here by hand, as the stage
records them, so that no training runs."""
import json
import os
from pathlib import Path

from finetuning.search_plan import SearchTree
from finetuning.stage import finetune_status
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
    return SearchTree(cfg, layout.finetune_dir(cfg), False)


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


def _glue_search(tmp_path, **overrides):
    glue, model = tmp_path / "glue", tmp_path / "model"
    if not model.is_dir():  # written once: a rewrite would give the files new stamps
        write_glue(glue, tasks=["RTE"])
        _model_folder(model)
    return finetune_config(tmp_path, model, glue, **{"FINETUNE.TASKS": "[RTE]", "FINETUNE.STILT.ENABLED": False,
                                                     **overrides})


def test_flipping_the_precision_or_length_grouping_reruns_the_completed_jobs(tmp_path):
    cfg = _glue_search(tmp_path)
    search = _search(cfg)
    for job in search.jobs["RTE"]:
        _complete(search, job)
    assert finetune_status(cfg).complete
    for change in ({"FINETUNE.PRECISION": "fp32"}, {"FINETUNE.GROUP_BY_LENGTH": False}):
        flipped = _glue_search(tmp_path, **change)
        assert _search(flipped).pending(["RTE"]) == search.jobs["RTE"], change
        assert not finetune_status(flipped).complete
    assert finetune_status(_glue_search(tmp_path, **{"FINETUNE.PRECISION": "auto"})).complete


# A job.json as the code before issue 21 wrote it at the default settings (MALFORMED_ROWS always recorded, PRECISION
# and GROUP_BY_LENGTH never): such completed jobs must keep counting.
OLD_DEFAULT_SETTINGS = {"max_seq_length": 32, "weight_decay": 0.01, "warmup_ratio": 0.06, "lr_scheduler": "polynomial",
                        "max_train_samples": 0, "max_eval_samples": 0, "random_init": False, "malformed_rows": "error"}


def test_a_job_completed_by_the_earlier_code_at_the_default_settings_still_counts(tmp_path):
    cfg = _glue_search(tmp_path)
    search = _search(cfg)
    (job,) = search.jobs["RTE"]
    record = json.loads((_complete(search, job) / "job.json").read_text())
    assert set(record) == {"task", "learning_rate", "batch_size", "epochs", "seed", "model_name_or_path",
                           "init_from", "settings", "inputs", "status"}
    record["settings"] = {**OLD_DEFAULT_SETTINGS, "data": cfg.FINETUNE.GLUE_DIR}
    (search.job_dir(job) / "job.json").write_text(json.dumps(record))
    assert finetune_status(cfg).complete
    assert not finetune_status(_glue_search(tmp_path, **{"FINETUNE.MALFORMED_ROWS": "skip"})).complete
    record["settings"]["weight_decay"] = 0.1  # a result setting of another value: not this job
    (search.job_dir(job) / "job.json").write_text(json.dumps(record))
    assert not finetune_status(cfg).complete


# TrainSettings fields that the job script fixes: the stage never passes their flags, so every job of every search
# trains with run_glue.py's value.
FIXED_BY_THE_JOB_SCRIPT = {
    "max_steps": "jobs train for their epochs (--num_train_epochs), never for --max_steps",
    "adam_betas": "AdamW (0.9, 0.999), as in the paper's run_glue.py",
    "adam_epsilon": "AdamW 1e-8",
    "lr_scheduler_kwargs": "the schedule's own defaults (polynomial: power 1)",
    "pad_to": "each batch is padded to its own longest row (--pad_to_max_length is not passed)",
}
JOB_OWN = ("learning_rate", "batch_size", "epochs", "seed")  # the job's grid values, in its record beside settings


def _trained_with(cfg, job) -> dict:
    """The ``TrainSettings`` run_glue.py builds from the command line the stage gives ``job``."""
    from dataclasses import asdict

    from finetuning.arguments import finalize, parse_args
    from finetuning.job_run import train_settings
    from finetuning.search_scheduler import job_arguments

    argv = job_arguments(cfg, job, Path(cfg.SYSTEM.OUTPUT_ROOT), "m", False, False, 1)[1:]  # less the script
    model_args, data_args, args, _ = parse_args(argv)
    finalize(model_args, data_args, args, gpu_available=False)
    return asdict(train_settings(data_args, args))


def _another_value(setting):
    if setting.choices:
        return next(c for c in setting.choices if c not in (setting.default, "fp16"))  # fp16 needs a GPU
    if isinstance(setting.default, bool):
        return not setting.default
    if isinstance(setting.default, int):
        return setting.default + 1
    return setting.default / 2 if setting.default else 0.5


def test_every_setting_that_changes_the_trained_weights_is_in_the_job_identity(tmp_path):
    """Walks TrainSettings: each field is set by a FINETUNE setting of the job identity, by the job's own grid values,
    or fixed by the job script (listed above), so that the next weight-changing setting cannot be left out."""
    from dataclasses import fields, replace

    from finetuning.job_record import job_settings
    from finetuning.search_plan import PlannedJob
    from finetuning.train_loop import TrainSettings
    from pipeline.defaults import SETTINGS, set_key

    base_cfg = finetune_config(tmp_path, tmp_path, "")
    job = PlannedJob("RTE", 5e-5, 32, 3, 42)
    base = _trained_with(base_cfg, job)
    covered = set(FIXED_BY_THE_JOB_SCRIPT)
    for name, value in (("learning_rate", 1e-4), ("batch_size", 16), ("epochs", 5), ("seed", 7)):
        changed = {f for f, v in _trained_with(base_cfg, replace(job, **{name: value})).items() if v != base[f]}
        assert changed and changed <= set(JOB_OWN), name
        covered |= changed
    for setting in SETTINGS:
        if not setting.key.startswith("FINETUNE.") or isinstance(setting.default, (str, list, dict)) and not setting.choices:
            continue
        cfg = base_cfg.clone()
        cfg.defrost()
        set_key(cfg, setting.key, _another_value(setting))
        changed = {f for f, v in _trained_with(cfg, job).items() if v != base[f]}
        if changed:
            assert job_settings(cfg, False) != job_settings(base_cfg, False), f"{setting.key} changes {changed}"
            covered |= changed
    assert covered == {f.name for f in fields(TrainSettings)}
