"""A job's dev metrics and result files.

The metrics are computed with numpy by scikit-learn's and scipy's definitions (a test checks each against them): the
``evaluate`` hub metrics cannot load offline, and importing scikit-learn costs each of a search's hundreds of short
jobs about a second. ``eval_results.json`` holds them under the task table's names (``mcc``, ``accuracy``, ``f1``,
``pearson``, ``spearman``, MNLI's ``accuracy_mm``, ``mse`` for an own regression task), with ``eval_loss``, and as
the HF ``run_glue.py`` example names them (``eval_matthews_correlation``, ``eval_combined_score``, ``eval_samples``,
``eval_runtime``, ..., MNLI's mismatched split with the suffix ``_mm``); ``train_results.json`` the training's
numbers, ``all_results.json`` both.
"""
from pathlib import Path

import numpy as np

from finetuning.job_checkpoints import TRAINER_STATE
from finetuning.job_record import EVAL_FILE
from pipeline.manifest import read_json, write_json_atomic


def _confusion(predictions, labels):
    """(classes, counts[true, predicted]) over the classes that occur in either."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    classes, codes = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(counts, (codes[:len(labels)], codes[len(labels):]), 1)
    return classes, counts


def _f1_scores(counts) -> np.ndarray:
    """Each class's F1; 0 where it has neither a true nor a predicted row (scikit-learn's zero_division=0)."""
    hits = np.diag(counts).astype(np.float64)
    denominator = counts.sum(axis=0) + counts.sum(axis=1)
    return np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=denominator > 0)


def _mcc(predictions, labels, positive):
    """The multiclass Matthews correlation (Gorodkin's R_K, as scikit-learn's ``matthews_corrcoef``)."""
    _, counts = _confusion(predictions, labels)
    true, predicted, n, hits = counts.sum(axis=1), counts.sum(axis=0), counts.sum(), np.trace(counts)
    denominator = np.sqrt(float(n * n - predicted @ predicted) * float(n * n - true @ true))
    return (hits * n - true @ predicted) / denominator if denominator else 0.0


def _accuracy(predictions, labels, positive):
    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def _f1(predictions, labels, positive):
    """The F1 of class ``positive`` (1 = paraphrase / duplicate)."""
    classes, counts = _confusion(predictions, labels)
    where = np.flatnonzero(classes == positive)
    return float(_f1_scores(counts)[where[0]]) if len(where) else 0.0


def _macro_f1(predictions, labels, positive):
    """The mean F1 over the classes that occur in the labels or the predictions (scikit-learn's ``macro``)."""
    return float(np.mean(_f1_scores(_confusion(predictions, labels)[1])))


def _pearson(predictions, labels, positive):
    """Pearson's r (as scipy's ``pearsonr``); NaN when either side is constant."""
    x = np.asarray(predictions, dtype=np.float64) - np.mean(predictions)
    y = np.asarray(labels, dtype=np.float64) - np.mean(labels)
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator else float("nan")


def _average_ranks(values) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank (scipy's ``rankdata``)."""
    _, inverse, counts = np.unique(np.asarray(values), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2.0)[inverse]


def _spearman(predictions, labels, positive):
    """Spearman's rho: Pearson's r of the average ranks (as scipy's ``spearmanr``)."""
    return _pearson(_average_ranks(predictions), _average_ranks(labels), positive)


def _mse(predictions, labels, positive):
    return float(np.mean((np.asarray(predictions, dtype=np.float64) - np.asarray(labels, dtype=np.float64)) ** 2))


METRIC_FUNCTIONS = {"mcc": _mcc, "accuracy": _accuracy, "f1": _f1, "macro_f1": _macro_f1, "pearson": _pearson,
                    "spearman": _spearman, "mse": _mse}
# Where the HF ``glue`` metric (and so HF's eval_results.json) names a metric otherwise (MNLI's mismatched accuracy is
# its second evaluation's accuracy, which gets the suffix _mm below).
_HF_NAMES = {"mcc": "matthews_correlation", "spearman": "spearmanr", "accuracy_mm": "accuracy"}
MISMATCHED = "dev_mismatched"


def compute_metrics(metric_names, predictions, labels, positive: int = 1) -> dict:
    """``{name: value}`` for each name (``f1`` is class ``positive``'s); a correlation that is undefined (constant
    predictions) counts as 0."""
    values = {name: float(METRIC_FUNCTIONS[name](predictions, labels, positive)) for name in metric_names}
    return {name: 0.0 if np.isnan(value) else value for name, value in values.items()}


def task_dev_metrics(task, dev_name: str, predictions, labels) -> dict:
    """The task's metrics on one dev split; MNLI's mismatched split reports ``accuracy_mm``."""
    if dev_name == MISMATCHED:
        return {"accuracy_mm": compute_metrics(("accuracy",), predictions, labels)["accuracy"]}
    names = [name for name in task.metrics if name != "accuracy_mm"]
    return compute_metrics(names, predictions, labels, task.positive_label)


RESULT_FILES = ("all_results.json", "train_results.json", EVAL_FILE, TRAINER_STATE)


def hf_evaluation(loss, scores: dict, samples: int, runtime_s: float, batches: int) -> dict:
    """An evaluation as the HF examples report it: ``eval_loss``, the ``eval_*`` scores, then the sample count and
    the speed (``eval_runtime``, ``eval_samples_per_second``, ``eval_steps_per_second``)."""
    runtime_s = max(runtime_s, 1e-9)
    return {"eval_loss": loss, **scores, "eval_samples": samples, "eval_runtime": round(runtime_s, 4),
            "eval_samples_per_second": round(samples / runtime_s, 3),
            "eval_steps_per_second": round(batches / runtime_s, 3)}


def dev_metrics(task, dev_name: str, logits, labels, loss, runtime_s: float, batches: int) -> tuple:
    """(metrics under the task table's names, the same under the HF example's ``eval_*`` names) of one dev split."""
    predictions = logits[:, 0] if task.is_regression else logits.argmax(axis=1)
    plain = task_dev_metrics(task, dev_name, predictions, labels)
    scores = {f"eval_{_HF_NAMES.get(name, name)}": value for name, value in plain.items()}
    if len(scores) > 1:
        scores["eval_combined_score"] = sum(scores.values()) / len(scores)
    hf = hf_evaluation(loss, scores, len(labels), runtime_s, batches)
    if dev_name == MISMATCHED:  # as the HF example names MNLI's second evaluation
        hf = {f"{key}_mm": value for key, value in hf.items()}
    return plain, hf


def remove_stale_results(out: Path) -> None:
    """A new training run first drops an earlier run's result files, so that none of them can pass for its own."""
    for name in RESULT_FILES:
        (Path(out) / name).unlink(missing_ok=True)


def write_results(out: Path, train: dict = None, evaluation: dict = None) -> None:
    """``train_results.json``/``eval_results.json`` for what this run did, merged into ``all_results.json``."""
    out = Path(out)
    if train:
        write_json_atomic(out / "train_results.json", train)
    if evaluation:
        write_json_atomic(out / EVAL_FILE, evaluation)
    combined = read_json(out / "all_results.json")
    write_json_atomic(out / "all_results.json", {**(combined if isinstance(combined, dict) else {}), **(train or {}),
                                                 **(evaluation or {})})
