"""The GLUE task table: one row per task, the one place that knows columns, labels, metrics and file names.

Labels are listed as the GLUE server spells them, in the order of the Hugging Face ``nyu-mll/glue`` integer labels,
so a hub label ``i`` and a local-file label ``labels[i]`` mean the same class. Regression tasks have no labels.
"""
import re
from dataclasses import dataclass
from typing import Optional

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class LocalSplit:
    """One TSV file of the official GLUE layout (as the GLUE download script writes it)."""
    file: str  # path inside the task folder
    text_columns: tuple  # column names (or 0-based indices when the file has no header)
    label_column: Optional[object] = None  # name or index; None for test files
    has_header: bool = True
    num_columns: Optional[int] = None  # columns of every row of a headerless file (else the header's count)


@dataclass(frozen=True)
class GlueTask:
    name: str  # canonical name, as on the GLUE leaderboard
    folder: str  # folder under GLUE_DIR
    hub_config: str  # config name in nyu-mll/glue
    hub_text_columns: tuple
    labels: Optional[tuple]  # class names as the server expects them; None = regression
    metrics: tuple  # metric names this task reports in eval_results.json
    primary_metric: str  # what the hyperparameter search maximises
    train: Optional[LocalSplit]
    dev: dict  # eval name -> LocalSplit ("dev", or "dev_matched"/"dev_mismatched" for MNLI)
    test: dict  # submission file name (without .tsv) -> LocalSplit
    hub_dev: dict  # eval name -> hub split name
    hub_test: dict  # submission file name -> hub split name
    also_predicts: tuple = ()  # tasks without training data whose test sets this task's model predicts

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def riders(self) -> list:
        """The rows of ``also_predicts``: their test sets ride along with this task's jobs (MNLI: AX)."""
        return [GLUE_TASKS[name] for name in self.also_predicts]


def _split(file, text_columns, label_column=None, has_header=True, num_columns=None):
    return LocalSplit(file, tuple(text_columns), label_column, has_header, num_columns)


GLUE_TASKS = {
    "CoLA": GlueTask(
        "CoLA", "CoLA", "cola", ("sentence",), ("0", "1"), ("mcc",), "mcc",
        train=_split("train.tsv", (3,), 1, has_header=False, num_columns=4),
        dev={"dev": _split("dev.tsv", (3,), 1, has_header=False, num_columns=4)},
        test={"CoLA": _split("test.tsv", ("sentence",))},
        hub_dev={"dev": "validation"}, hub_test={"CoLA": "test"}),
    "SST-2": GlueTask(
        "SST-2", "SST-2", "sst2", ("sentence",), ("0", "1"), ("accuracy",), "accuracy",
        train=_split("train.tsv", ("sentence",), "label"),
        dev={"dev": _split("dev.tsv", ("sentence",), "label")},
        test={"SST-2": _split("test.tsv", ("sentence",))},
        hub_dev={"dev": "validation"}, hub_test={"SST-2": "test"}),
    "MRPC": GlueTask(
        "MRPC", "MRPC", "mrpc", ("sentence1", "sentence2"), ("0", "1"), ("accuracy", "f1"), "f1",
        train=_split("train.tsv", ("#1 String", "#2 String"), "Quality"),
        dev={"dev": _split("dev.tsv", ("#1 String", "#2 String"), "Quality")},
        test={"MRPC": _split("test.tsv", ("#1 String", "#2 String"))},
        hub_dev={"dev": "validation"}, hub_test={"MRPC": "test"}),
    "STS-B": GlueTask(
        "STS-B", "STS-B", "stsb", ("sentence1", "sentence2"), None, ("pearson", "spearman"), "pearson",
        train=_split("train.tsv", ("sentence1", "sentence2"), "score"),
        dev={"dev": _split("dev.tsv", ("sentence1", "sentence2"), "score")},
        test={"STS-B": _split("test.tsv", ("sentence1", "sentence2"))},
        hub_dev={"dev": "validation"}, hub_test={"STS-B": "test"}),
    "QQP": GlueTask(
        "QQP", "QQP", "qqp", ("question1", "question2"), ("0", "1"), ("accuracy", "f1"), "f1",
        train=_split("train.tsv", ("question1", "question2"), "is_duplicate"),
        dev={"dev": _split("dev.tsv", ("question1", "question2"), "is_duplicate")},
        test={"QQP": _split("test.tsv", ("question1", "question2"))},
        hub_dev={"dev": "validation"}, hub_test={"QQP": "test"}),
    "MNLI": GlueTask(
        "MNLI", "MNLI", "mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"),
        ("accuracy", "accuracy_mm"), "accuracy",
        train=_split("train.tsv", ("sentence1", "sentence2"), "gold_label"),
        dev={"dev_matched": _split("dev_matched.tsv", ("sentence1", "sentence2"), "gold_label"),
             "dev_mismatched": _split("dev_mismatched.tsv", ("sentence1", "sentence2"), "gold_label")},
        test={"MNLI-m": _split("test_matched.tsv", ("sentence1", "sentence2")),
              "MNLI-mm": _split("test_mismatched.tsv", ("sentence1", "sentence2"))},
        hub_dev={"dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched"},
        hub_test={"MNLI-m": "test_matched", "MNLI-mm": "test_mismatched"}, also_predicts=("AX",)),
    "QNLI": GlueTask(
        "QNLI", "QNLI", "qnli", ("question", "sentence"), ("entailment", "not_entailment"), ("accuracy",),
        "accuracy",
        train=_split("train.tsv", ("question", "sentence"), "label"),
        dev={"dev": _split("dev.tsv", ("question", "sentence"), "label")},
        test={"QNLI": _split("test.tsv", ("question", "sentence"))},
        hub_dev={"dev": "validation"}, hub_test={"QNLI": "test"}),
    "RTE": GlueTask(
        "RTE", "RTE", "rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), ("accuracy",), "accuracy",
        train=_split("train.tsv", ("sentence1", "sentence2"), "label"),
        dev={"dev": _split("dev.tsv", ("sentence1", "sentence2"), "label")},
        test={"RTE": _split("test.tsv", ("sentence1", "sentence2"))},
        hub_dev={"dev": "validation"}, hub_test={"RTE": "test"}),
    "WNLI": GlueTask(
        "WNLI", "WNLI", "wnli", ("sentence1", "sentence2"), ("0", "1"), ("accuracy",), "accuracy",
        train=_split("train.tsv", ("sentence1", "sentence2"), "label"),
        dev={"dev": _split("dev.tsv", ("sentence1", "sentence2"), "label")},
        test={"WNLI": _split("test.tsv", ("sentence1", "sentence2"))},
        hub_dev={"dev": "validation"}, hub_test={"WNLI": "test"}),
    # AX has no training data: it is predicted with the MNLI model (same labels; see MNLI's also_predicts).
    "AX": GlueTask(
        "AX", "diagnostic", "ax", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), (), "",
        train=None, dev={}, test={"AX": _split("diagnostic.tsv", ("sentence1", "sentence2"))},
        hub_dev={}, hub_test={"AX": "test"}),
}

# The nine tasks that are finetuned (AX rides along with MNLI).
FINETUNED_TASKS = ("CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI")

# Every file of a complete gluebenchmark.com submission, in leaderboard order.
SUBMISSION_FILES = ("CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI-m", "MNLI-mm", "QNLI", "RTE", "WNLI", "AX")

# The dev metrics averaged into the GLUE score as in the BERT paper (WNLI excluded): (task, metric, column label).
GLUE_SCORE_METRICS = (
    ("MNLI", "accuracy", "MNLI-m"), ("MNLI", "accuracy_mm", "MNLI-mm"), ("QQP", "f1", "QQP"),
    ("QNLI", "accuracy", "QNLI"), ("SST-2", "accuracy", "SST-2"), ("CoLA", "mcc", "CoLA"),
    ("STS-B", "spearman", "STS-B"), ("MRPC", "f1", "MRPC"), ("RTE", "accuracy", "RTE"),
)


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_ALIASES = {_squash(name): name for name in GLUE_TASKS}
_ALIASES.update({_squash(task.hub_config): name for name, task in GLUE_TASKS.items()})
_ALIASES.update({"mnlim": "MNLI", "mnlimm": "MNLI", "diagnostic": "AX", "stsbenchmark": "STS-B"})


def canonical_task_name(name: str) -> str:
    """The canonical spelling of a GLUE task name given in any usual form (``sst2``, ``SST-2``, ``sts-b``, ...)."""
    canonical = _ALIASES.get(_squash(str(name)))
    if canonical is None:
        raise ConfigError(f"unknown GLUE task {name!r}: expected one of {', '.join(GLUE_TASKS)}")
    return canonical


def get_task(name: str) -> GlueTask:
    return GLUE_TASKS[canonical_task_name(name)]


def predicting_task(name: str) -> str:
    """The finetuned task whose jobs predict test split (submission file) ``name``: the task that holds it, or the
    one that lists its holder in ``also_predicts``."""
    for task in GLUE_TASKS.values():
        if task.train is not None and (name in task.test or any(name in rider.test for rider in task.riders)):
            return task.name
    raise ConfigError(f"no finetuned GLUE task predicts {name!r}")
