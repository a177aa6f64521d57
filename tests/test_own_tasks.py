"""Tasks of one's own (FINETUNE.OWN_TASKS) in the search: the YAML shape of the issue, the plan and each job's
command line, and every bad input reported in one line before any job starts."""
import csv
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, DataError
from tests.test_finetuning_fixtures import finetune_config, sentence, write_glue, write_tiny_model

ISSUE_YAML = """\
FINETUNE:
  TASKS: [RTE, triage, findings]      # GLUE names and own task names, in any mix
  OWN_TASKS:
    triage:
      TYPE: classification            # classification | regression | token_classification
      TRAIN_FILE: data/triage/train.csv
      VALIDATION_FILE: data/triage/dev.csv
      TEST_FILE: data/triage/test.csv # optional
      TEXT_COLUMNS: [note]            # one column, or two for a pair task
      LABEL_COLUMN: label
      METRIC: macro_f1                # the metric the search selects on
    findings:
      TYPE: token_classification
      TRAIN_FILE: data/findings/train.conll
      VALIDATION_FILE: data/findings/dev.conll
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tiny_bert"))


def _csv(path: Path, header: list, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _notes(folder: Path, n: int, labels=("urgent", "routine"), seed: int = 0) -> Path:
    import random

    rng = random.Random(seed)
    return _csv(folder, ["id", "note", "label"], [(f"n{i}", sentence(rng), labels[i % len(labels)]) for i in range(n)])


def test_the_issues_yaml_loads_as_written_and_plans_each_task_with_its_own_job_script(tmp_path):
    from finetuning.search_plan import plan_task_jobs
    from finetuning.search_scheduler import job_arguments

    for split in ("train", "dev", "test"):
        _notes(tmp_path / "data" / "triage" / f"{split}.csv", 4)
    (tmp_path / "data" / "findings").mkdir()
    for split in ("train", "dev"):
        (tmp_path / "data" / "findings" / f"{split}.conll").write_text("Aspirin\tB-DRUG\nhelps\tO\n", encoding="utf-8")
    (tmp_path / "own.yaml").write_text(ISSUE_YAML, encoding="utf-8")
    glue = write_glue(tmp_path / "glue", tasks=["RTE"], n_train=2, n_dev=2, n_test=2)
    cfg = finetune_config(tmp_path, tmp_path, glue, **{"FINETUNE.OWN_TASKS.triage.EPOCHS": "[2, 4]"},
                          config_path=tmp_path / "own.yaml")
    triage = cfg.FINETUNE.OWN_TASKS.triage
    assert (triage.TRAIN_FILE, list(triage.TEXT_COLUMNS), triage.METRIC) == (
        str(tmp_path / "data/triage/train.csv"), ["note"], "macro_f1")
    assert [job.epochs for job in plan_task_jobs(cfg, "triage")] == [2, 4]  # its own grid where it gives one
    assert len(plan_task_jobs(cfg, "findings")) == len(plan_task_jobs(cfg, "RTE")) == 1  # the SMALL grid
    argv = job_arguments(cfg, plan_task_jobs(cfg, "triage")[0], tmp_path / "job", "m", False, False, 1)
    assert argv[0].endswith("run_glue.py")
    for flag, value in (("--train_file", triage.TRAIN_FILE), ("--test_file", triage.TEST_FILE),
                        ("--text_column_names", "note"), ("--label_column_name", "label"),
                        ("--metric_name", "macro_f1"), ("--task_type", "classification")):
        assert argv[argv.index(flag) + 1] == value, flag
    argv = job_arguments(cfg, plan_task_jobs(cfg, "findings")[0], tmp_path / "job", "m", False, False, 1)
    assert argv[0].endswith("run_ner.py") and "--do_predict" not in argv  # no TEST_FILE: nothing to predict
    assert "--label_column_name" not in argv and "--task_name" not in argv  # run_ner.py's: tags, else ner_tags


def test_own_task_config_problems_are_one_line_each_before_any_work(tmp_path):
    train = _notes(tmp_path / "train.csv", 4)
    own = "FINETUNE.OWN_TASKS"
    with pytest.raises(ConfigError) as info:
        finetune_config(tmp_path, tmp_path, "", **{
            "FINETUNE.TASKS": "[sst2, spans, triage, score]",
            f"{own}.sst2.TRAIN_FILE": str(train), f"{own}.sst2.VALIDATION_FILE": str(train),
            f"{own}.spans.TYPE": "token_classification", f"{own}.spans.TRAIN_FILE": str(train),
            f"{own}.spans.VALIDATION_FILE": str(tmp_path / "absent.conll"), f"{own}.spans.METRIC": "macro_f1",
            f"{own}.triage.TRAIN_FILE": str(train), f"{own}.triage.METRIC": "f1", f"{own}.triage.LABEL_COLUM": "y",
            f"{own}.score.TYPE": "regression", f"{own}.score.TRAIN_FILE": str(train),
            f"{own}.score.VALIDATION_FILE": str(train), f"{own}.score.POSITIVE_LABEL": True})
    text = "\n".join(info.value.problems)
    for expected in (
            "unknown field FINETUNE.OWN_TASKS.triage.LABEL_COLUM (did you mean LABEL_COLUMN?)",
            "FINETUNE.OWN_TASKS.score.POSITIVE_LABEL: expected a string, got True (YAML reads yes/no/on/off as"
            " true/false: quote it, e.g. 'yes')",
            "FINETUNE.OWN_TASKS.spans.METRIC = macro_f1 does not fit TYPE token_classification: use one of f1,"
            " precision, recall, accuracy",
            "FINETUNE.OWN_TASKS.triage.VALIDATION_FILE is missing",
            "FINETUNE.OWN_TASKS.triage.METRIC = f1 is the F1 of one class: name it in POSITIVE_LABEL (or use"
            " macro_f1)"):
        assert expected in text
    assert len(info.value.problems) == 7 and all("\n" not in line for line in info.value.problems)
    with pytest.raises(ConfigError) as info:  # the stage's own checks, once the values are good
        finetune_config(tmp_path, tmp_path, "", **{
            "FINETUNE.TASKS": "[sst2, spans, triage]", f"{own}.sst2.TRAIN_FILE": str(train),
            f"{own}.sst2.VALIDATION_FILE": str(train), f"{own}.spans.TYPE": "token_classification",
            f"{own}.spans.TRAIN_FILE": str(train), f"{own}.spans.VALIDATION_FILE": str(tmp_path / "absent.conll"),
            f"{own}.triage.TRAIN_FILE": str(train), f"{own}.triage.VALIDATION_FILE": str(train),
            "FINETUNE.STILT.SOURCE": "triage", "FINETUNE.STILT.TARGETS": "[spans]"})
    assert info.value.problems == [
        "FINETUNE.OWN_TASKS.sst2: SST-2 is a GLUE task; name your own task otherwise (e.g. my_sst2), or use the GLUE"
        " task itself",
        f"FINETUNE.OWN_TASKS.spans.VALIDATION_FILE: file not found: {tmp_path / 'absent.conll'}"]


def _own_config(tmp_path, model, train, dev, test=None, **fields):
    own = "FINETUNE.OWN_TASKS.triage"
    options = {f"{own}.TRAIN_FILE": str(train), f"{own}.VALIDATION_FILE": str(dev),
               **({f"{own}.TEST_FILE": str(test)} if test else {}), f"{own}.TEXT_COLUMNS": "[note]",
               **{f"{own}.{key}": value for key, value in fields.items()}}
    return finetune_config(tmp_path, model, "", **{"FINETUNE.TASKS": "[triage]", **options})


@pytest.mark.parametrize("case", ["missing column", "unknown dev label", "empty file", "header only",
                                  "row without label"])
def test_a_data_problem_is_one_line_naming_the_file_and_row_before_any_job(tmp_path, model, case):
    from finetuning.stage import finetune

    train = _notes(tmp_path / "train.csv", 12)
    dev = _notes(tmp_path / "dev.csv", 6, seed=1)
    expected = {
        "missing column": (dict(LABEL_COLUMN="triage_label"),
                           f"{train}: no label column 'triage_label' (columns: id, note, label); name it with"
                           f" LABEL_COLUMN (--label_column_name)"),
        "unknown dev label": (None, f"{dev}: row 3: label 'stat' does not occur in the training data (labels: routine,"
                                    f" urgent)"),
        "empty file": (None, f"{dev}: the file is empty; it needs a header and rows"),
        "header only": (None, f"{dev}: no rows (only a header?); the task needs labelled rows"),
        "row without label": (None, f"{dev}: row 2 has no label"),
    }
    fields, message = expected[case]
    if case == "unknown dev label":
        _notes(dev, 6, labels=("urgent", "routine", "stat"), seed=1)
    elif case == "empty file":
        dev.write_text("", encoding="utf-8")
    elif case == "header only":
        dev.write_text("id,note,label\n", encoding="utf-8")
    elif case == "row without label":
        dev.write_text("id,note,label\nn0,a note,urgent\nn1,another note,\n", encoding="utf-8")
    cfg = _own_config(tmp_path, model, train, dev, **(fields or {}))
    with pytest.raises(DataError) as info:
        finetune(cfg)
    assert str(info.value) == message
    assert not list(Path(cfg.SYSTEM.OUTPUT_ROOT).rglob("job.json"))  # no job started
