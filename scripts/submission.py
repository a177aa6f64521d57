"""Build ``glue_submission.zip`` for gluebenchmark.com from the best seed of each task's best configuration: eleven
files at the zip root, each with the header ``index\\tprediction`` and one row per test example in test-file order,
labels spelled as in the task table, STS-B scores inside [0, 5]. Every file is checked before the zip is written,
because the server's own error for a wrong row count or label arrives only after an upload.
"""
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from finetuning.glue_tasks import GLUE_TASKS, SUBMISSION_FILES, predicting_task
from pipeline.errors import DataError

HEADER = ("index", "prediction")
STSB_RANGE = (0.0, 5.0)

# Rows of the official test sets (nyu-mll/glue has the same): a hint when no local test file can be counted.
OFFICIAL_TEST_ROWS = {"CoLA": 1063, "SST-2": 1821, "MRPC": 1725, "STS-B": 1379, "QQP": 390965, "MNLI-m": 9796,
                      "MNLI-mm": 9847, "QNLI": 5463, "RTE": 3000, "WNLI": 146, "AX": 1104}


def _owner_task(name: str):
    """The task-table row that holds the test file and the labels of submission file ``name``."""
    return next(task for task in GLUE_TASKS.values() if name in task.test)


def test_file_path(glue_dir, name: str) -> Path:
    task = _owner_task(name)
    return Path(glue_dir) / task.folder / task.test[name].file


def _data_lines(path: Path) -> list:
    """The lines of a GLUE TSV without empty ones. Split on '\\n' only: sentences may hold other separators."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def _index(value: str) -> str:
    """Indices compare as integers where they are integers ("007" == "7")."""
    value = value.strip()
    try:
        return str(int(value))
    except ValueError:
        return value


def read_predictions(path: Path) -> list:
    """[(index, prediction)] from a job's ``predictions_<NAME>.tsv``; DataError if its layout is wrong."""
    lines = _data_lines(path)
    if not lines or tuple(lines[0].split("\t")) != HEADER:
        raise DataError(f"{path}: the first line must be the header 'index<TAB>prediction'")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"{path}: line {number} has {len(fields)} columns, expected 2 (index, prediction)")
        rows.append((fields[0].strip(), fields[1].strip()))
    return rows


def _check_rows_against_test_file(rows, predictions_path: Path, test_path: Path) -> None:
    lines = _data_lines(test_path)
    if not lines or lines[0].split("\t")[0].strip().lower() != "index":
        raise DataError(f"{test_path}: a GLUE test file must start with a header whose first column is 'index'")
    expected = [_index(line.split("\t")[0]) for line in lines[1:]]  # one per test example, in file order
    if len(rows) != len(expected):
        raise DataError(f"{predictions_path}: {len(rows)} predictions but the test file {test_path} has"
                        f" {len(expected)} rows: the job read another version of that file; run the finetune stage"
                        f" again (it reruns the jobs whose GLUE files changed), or delete {predictions_path.parent} to"
                        f" rerun this job")
    for position, ((index, _), wanted) in enumerate(zip(rows, expected)):
        if _index(index) != wanted:
            raise DataError(f"{predictions_path}: row {position + 1} has index {index!r} but the test file"
                            f" {test_path} has {wanted!r} there; predictions must follow the test-file order")


def _format_labels(name: str, rows, path: Path):
    """Rows with server-ready predictions, and how many STS-B scores were clipped into [0, 5]."""
    labels = _owner_task(name).labels
    if labels is not None:
        for index, prediction in rows:
            if prediction not in labels:
                raise DataError(f"{path}: prediction {prediction!r} (index {index}) is not a {name} label the"
                                f" server accepts ({', '.join(labels)})")
        return rows, 0
    low, high = STSB_RANGE
    out, clipped = [], 0
    for index, prediction in rows:
        try:
            score = float(prediction)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise DataError(f"{path}: prediction {prediction!r} (index {index}) is not a finite number")
        if not low <= score <= high:
            clipped += 1
            prediction = f"{min(max(score, low), high):g}"
        out.append((index, prediction))
    return out, clipped


@dataclass
class SubmissionFile:
    name: str  # submission file name without .tsv
    source: Path  # the predictions file it was made from
    rows: list  # [(index, prediction)], server-ready
    checked_against: str  # the test file whose rows were matched, "" when none was available
    clipped: int = 0  # STS-B scores moved into [0, 5]


@dataclass
class SubmissionPlan:
    files: dict = field(default_factory=dict)  # name -> SubmissionFile, in SUBMISSION_FILES order
    missing: dict = field(default_factory=dict)  # name -> why it is missing
    notes: list = field(default_factory=list)  # facts the report should show (unchecked counts, clipping)

    def as_dict(self) -> dict:
        return {"included": list(self.files), "missing": dict(self.missing), "notes": list(self.notes),
                "sources": {name: str(f.source) for name, f in self.files.items()},
                "rows": {name: len(f.rows) for name, f in self.files.items()}}


def _plan_file(name: str, predictions_path: Path, glue_dir) -> SubmissionFile:
    rows = read_predictions(predictions_path)
    checked_against = ""
    if glue_dir:
        test_path = test_file_path(glue_dir, name)
        if not test_path.is_file():
            raise DataError(f"{predictions_path}: cannot check its row count, the test file {test_path} is missing"
                            " from FINETUNE.GLUE_DIR")
        _check_rows_against_test_file(rows, predictions_path, test_path)
        checked_against = str(test_path)
    else:
        indices = [_index(index) for index, _ in rows]
        if len(set(indices)) != len(indices):
            raise DataError(f"{predictions_path}: repeated indices; each test example must appear once")
    rows, clipped = _format_labels(name, rows, predictions_path)
    return SubmissionFile(name, predictions_path, rows, checked_against, clipped)


def plan_submission(bests: dict, glue_dir) -> SubmissionPlan:
    """Check and format every submission file that the best jobs (``{task: TaskBest}``) provide: DataError for a
    file that is wrong (row count, order, label), a missing one recorded in ``missing`` with the reason."""
    plan = SubmissionPlan()
    for name in SUBMISSION_FILES:
        task = predicting_task(name)  # AX is predicted by the MNLI model
        best = bests.get(task)
        if best is None:
            plan.missing[name] = f"no completed {task} job"
            continue
        predictions_path = best.best_job.predictions_path(name)
        if not predictions_path.is_file():
            plan.missing[name] = f"{predictions_path} does not exist"
            continue
        entry = _plan_file(name, predictions_path, glue_dir)
        plan.files[name] = entry
        if not entry.checked_against:
            official = OFFICIAL_TEST_ROWS[name]
            hint = "" if len(entry.rows) == official else f", but the official test set has {official}: check it"
            plan.notes.append(f"{name}.tsv: {len(entry.rows)} rows, as the job predicted; the count could not be"
                              f" checked against the test file (FINETUNE.GLUE_DIR is empty: test sets came from"
                              f" the hub){hint}")
        if entry.clipped:
            plan.notes.append(f"{name}.tsv: {entry.clipped} scores clipped into [{STSB_RANGE[0]:g}, {STSB_RANGE[1]:g}]")
    return plan


def write_submission_zip(plan: SubmissionPlan, path) -> Path:
    """Write the planned files at the root of the zip ``path``, via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, entry in plan.files.items():
                lines = ["\t".join(HEADER)] + [f"{index}\t{prediction}" for index, prediction in entry.rows]
                archive.writestr(f"{name}.tsv", "\n".join(lines) + "\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
