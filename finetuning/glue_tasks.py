"""The GLUE task table: one row per task, the one place that knows columns, labels, metrics and file names.

Labels are listed as the GLUE server spells them, in the order of the Hugging Face ``nyu-mll/glue`` integer labels,
so a hub label ``i`` and a local-file label ``labels[i]`` mean the same class. Regression tasks have no labels.
"""
import re
from dataclasses import dataclass, field
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
    # The splits (none for a task of one's own or a token task, whose files come from their flags):
    train: Optional[LocalSplit] = None
    dev: dict = field(default_factory=dict)  # eval name -> LocalSplit ("dev", or "dev_matched"/"dev_mismatched")
    test: dict = field(default_factory=dict)  # submission file name (without .tsv) -> LocalSplit
    hub_dev: dict = field(default_factory=dict)  # eval name -> hub split name
    hub_test: dict = field(default_factory=dict)  # submission file name -> hub split name
    also_predicts: tuple = ()  # tasks without training data whose test sets this task's model predicts
    positive_label: int = 1  # the class whose F1 is ``f1`` (1 = paraphrase / duplicate)
    tag_scheme: str = ""  # a token-classification task's tags (IOB2, BIOES, BILOU; finetuning.token_data); "" = none

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def token_level(self) -> bool:
        """A label per word (entity recognition) rather than per text."""
        return bool(self.tag_scheme)

    @property
    def riders(self) -> list:
        """The rows of ``also_predicts``: their test sets ride along with this task's jobs (MNLI: AX)."""
        return [GLUE_TASKS[name] for name in self.also_predicts]


def _common(name, hub_config, hub_text_columns, labels, metrics, primary_metric, columns, label_column) -> GlueTask:
    """A task in the common layout: ``train.tsv``, ``dev.tsv`` and ``test.tsv`` with a header in folder ``name``,
    and the Hub's train, validation and test splits."""
    return GlueTask(name, name, hub_config, hub_text_columns, labels, metrics, primary_metric,
                    train=LocalSplit("train.tsv", columns, label_column),
                    dev={"dev": LocalSplit("dev.tsv", columns, label_column)},
                    test={name: LocalSplit("test.tsv", columns)},
                    hub_dev={"dev": "validation"}, hub_test={name: "test"})


_PAIR = ("sentence1", "sentence2")  # the text columns of most pair tasks, in their files and on the Hub
_NLI_LABELS = ("entailment", "neutral", "contradiction")
GLUE_TASKS = {
    "CoLA": GlueTask(
        "CoLA", "CoLA", "cola", ("sentence",), ("0", "1"), ("mcc",), "mcc",
        train=LocalSplit("train.tsv", (3,), 1, has_header=False, num_columns=4),
        dev={"dev": LocalSplit("dev.tsv", (3,), 1, has_header=False, num_columns=4)},
        test={"CoLA": LocalSplit("test.tsv", ("sentence",))},
        hub_dev={"dev": "validation"}, hub_test={"CoLA": "test"}),
    "SST-2": _common("SST-2", "sst2", ("sentence",), ("0", "1"), ("accuracy",), "accuracy", ("sentence",), "label"),
    "MRPC": _common("MRPC", "mrpc", _PAIR, ("0", "1"), ("accuracy", "f1"), "f1", ("#1 String", "#2 String"),
                    "Quality"),
    "STS-B": _common("STS-B", "stsb", _PAIR, None, ("pearson", "spearman"), "pearson", _PAIR, "score"),
    "QQP": _common("QQP", "qqp", ("question1", "question2"), ("0", "1"), ("accuracy", "f1"), "f1",
                   ("question1", "question2"), "is_duplicate"),
    "MNLI": GlueTask(
        "MNLI", "MNLI", "mnli", ("premise", "hypothesis"), _NLI_LABELS, ("accuracy", "accuracy_mm"), "accuracy",
        train=LocalSplit("train.tsv", _PAIR, "gold_label"),
        dev={"dev_matched": LocalSplit("dev_matched.tsv", _PAIR, "gold_label"),
             "dev_mismatched": LocalSplit("dev_mismatched.tsv", _PAIR, "gold_label")},
        test={"MNLI-m": LocalSplit("test_matched.tsv", _PAIR), "MNLI-mm": LocalSplit("test_mismatched.tsv", _PAIR)},
        hub_dev={"dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched"},
        hub_test={"MNLI-m": "test_matched", "MNLI-mm": "test_mismatched"}, also_predicts=("AX",)),
    "QNLI": _common("QNLI", "qnli", ("question", "sentence"), ("entailment", "not_entailment"), ("accuracy",),
                    "accuracy", ("question", "sentence"), "label"),
    "RTE": _common("RTE", "rte", _PAIR, ("entailment", "not_entailment"), ("accuracy",), "accuracy", _PAIR, "label"),
    "WNLI": _common("WNLI", "wnli", _PAIR, ("0", "1"), ("accuracy",), "accuracy", _PAIR, "label"),
    # AX has no training data: it is predicted with the MNLI model (same labels; see MNLI's also_predicts).
    "AX": GlueTask(
        "AX", "diagnostic", "ax", ("premise", "hypothesis"), _NLI_LABELS, (), "",
        test={"AX": LocalSplit("diagnostic.tsv", _PAIR)}, hub_test={"AX": "test"}),
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
