"""The fields of a task of one's own, ``FINETUNE.OWN_TASKS.<name>`` (the one setting whose keys, the task names, the
user chooses): ``Setting`` rows like the table's, with the same value checks. The config loader merges a section
field by field, so ``--opts FINETUNE.OWN_TASKS.triage.METRIC accuracy`` changes one field of a task the YAML declared.
"""
import re

from pipeline.setting import Setting as F

OWN_TASKS_KEY = "FINETUNE.OWN_TASKS"
TASK_TYPES = ("classification", "regression", "token_classification")
# The metrics a job of each type reports (eval_results.json); METRIC picks the one the search maximises. Binary F1
# (``f1``) needs a POSITIVE_LABEL; a token task's precision/recall/f1 are entity-level (seqeval), accuracy per token.
METRICS = {"classification": ("accuracy", "macro_f1", "mcc", "f1"), "regression": ("pearson", "spearman"),
           "token_classification": ("f1", "precision", "recall", "accuracy")}
DEFAULT_METRIC = {"classification": "macro_f1", "regression": "pearson", "token_classification": "f1"}
# The label column when LABEL_COLUMN is empty (HF run_glue's default; a token task's is run_ner.py's: tags, else
# ner_tags).
DEFAULT_LABEL_COLUMN = {"classification": "label", "regression": "label"}
DATA_FILE_FIELDS = ("TRAIN_FILE", "VALIDATION_FILE", "TEST_FILE")

FIELDS = (
    F("TYPE", "classification", "classification | regression | token_classification", choices=TASK_TYPES),
    F("TRAIN_FILE", "", "training data: CSV, TSV, JSON lines or Parquet; a token task: CoNLL (token<TAB>tag lines, a"
                        " blank line between sentences) or JSON lines with tokens and tags lists"),
    F("VALIDATION_FILE", "", "dev data, same format: what the search scores and selects on"),
    F("TEST_FILE", "", "optional unlabeled data to predict (predictions_test.tsv, with its id column when it has one)"),
    F("TEXT_COLUMNS", [], "one text column, or two for a pair task; [] = sentence1/sentence2, else the first one or"
                          " two text columns (a token task: its tokens column, default tokens)", element_type=str),
    F("LABEL_COLUMN", "", "the label column; \"\" = label (a token task: tags, else ner_tags)"),
    F("ID_COLUMN", "", "the row id column written with the predictions; \"\" = idx, index or id when there is one"),
    F("METRIC", "", "the dev metric the search selects on; \"\" = macro_f1 | pearson | f1 by TYPE (classification:"
                    " accuracy | macro_f1 | mcc | f1, regression: pearson | spearman, token_classification: f1 |"
                    " precision | recall | accuracy)"),
    F("POSITIVE_LABEL", "", "the positive class of a binary classification: also reports its F1 (metric f1)"),
    F("LABEL_ALL_TOKENS", False, "token task: every word piece carries its word's tag (default: the first piece only)"),
    F("MAX_SEQ_LENGTH", 0, "longest tokenized input of this task; 0 = FINETUNE.MAX_SEQ_LENGTH", range="[0, inf)"),
    F("LEARNING_RATES", [], "this task's grid; [] = the SMALL or LARGE grid by training size", range="(0, inf)",
      element_type=float),
    F("BATCH_SIZES", [], "this task's grid; [] = the SMALL or LARGE grid by training size", range="[1, inf)",
      element_type=int),
    F("EPOCHS", [], "this task's grid; [] = the SMALL or LARGE grid by training size", range="[1, inf)",
      element_type=int),
)
FIELDS_BY_NAME = {field.key: field for field in FIELDS}
_TASK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def default_fields() -> dict:
    return {field.key: list(field.default) if isinstance(field.default, list) else field.default for field in FIELDS}


def reported_metrics(task_type: str, positive_label) -> tuple:
    """The metrics of ``METRICS`` a job of an own task reports: a classification's ``f1`` only with a positive
    label to score."""
    return tuple(m for m in METRICS[task_type] if m != "f1" or task_type != "classification" or positive_label)


def metric_of(task) -> str:
    """The metric the search selects on for an own task (a ``FINETUNE.OWN_TASKS`` section)."""
    return task.METRIC or DEFAULT_METRIC.get(task.TYPE, "")


def own_task_problems(own_tasks) -> list:
    """One line per problem of the declared tasks' fields (values only: files are checked by the finetune stage)."""
    problems = []
    for name, task in own_tasks.items():
        where = f"{OWN_TASKS_KEY}.{name}"
        problems += [f"{where}.{message}" for message in (field.check_value(task[field.key]) for field in FIELDS)
                     if message]
        if not _TASK_NAME.match(name):
            problems.append(f"{where}: a task name is a folder name: letters, digits, '_', '-' and '.' only")
        if task.TYPE not in TASK_TYPES:
            continue
        problems += [f"{where}.{key} is missing: the search trains on TRAIN_FILE and selects on VALIDATION_FILE"
                     for key in ("TRAIN_FILE", "VALIDATION_FILE") if not task[key]]
        metric = metric_of(task)
        if metric not in METRICS[task.TYPE]:
            problems.append(f"{where}.METRIC = {metric} does not fit TYPE {task.TYPE}: use one of"
                            f" {', '.join(METRICS[task.TYPE])}")
        elif metric == "f1" and task.TYPE == "classification" and not task.POSITIVE_LABEL:
            problems.append(f"{where}.METRIC = f1 is the F1 of one class: name it in POSITIVE_LABEL (or use macro_f1)")
        if len(task.TEXT_COLUMNS) > (1 if task.TYPE == "token_classification" else 2):
            problems.append(f"{where}.TEXT_COLUMNS = {list(task.TEXT_COLUMNS)}: give one column, or two for a pair"
                            f" task (a token task: its one tokens column)")
        if task.POSITIVE_LABEL and task.TYPE != "classification":
            problems.append(f"{where}.POSITIVE_LABEL is for a classification task, not {task.TYPE}")
    return problems
