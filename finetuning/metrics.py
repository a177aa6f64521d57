"""GLUE dev metrics computed with scikit-learn and scipy (the ``evaluate`` hub metrics cannot load offline).

Names are those of the task table and of ``eval_results.json``: ``mcc``, ``accuracy``, ``f1``, ``pearson``,
``spearman`` (``mse`` for a regression task of one's own); MNLI's mismatched accuracy is reported as
``accuracy_mm`` by the caller. ``hf_metric_name`` gives the name the Hugging Face GLUE metric uses for each.
"""
import numpy as np


def _mcc(predictions, labels):
    from sklearn.metrics import matthews_corrcoef

    return matthews_corrcoef(labels, predictions)


def _accuracy(predictions, labels):
    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def _f1(predictions, labels):
    from sklearn.metrics import f1_score

    return f1_score(labels, predictions)  # binary F1 of the positive class (1 = paraphrase / duplicate)


def _pearson(predictions, labels):
    from scipy.stats import pearsonr

    return pearsonr(predictions, labels)[0]


def _spearman(predictions, labels):
    from scipy.stats import spearmanr

    return spearmanr(predictions, labels)[0]


def _mse(predictions, labels):
    return float(np.mean((np.asarray(predictions, dtype=np.float64) - np.asarray(labels, dtype=np.float64)) ** 2))


METRIC_FUNCTIONS = {"mcc": _mcc, "accuracy": _accuracy, "f1": _f1, "pearson": _pearson, "spearman": _spearman,
                    "mse": _mse}
# Where the HF ``glue`` metric (and so HF's eval_results.json) names a metric otherwise.
_HF_NAMES = {"mcc": "matthews_correlation", "spearman": "spearmanr"}


def hf_metric_name(name: str) -> str:
    return _HF_NAMES.get(name, name)


def compute_metrics(metric_names, predictions, labels) -> dict:
    """``{name: value}`` for each name; a correlation that is undefined (constant predictions) counts as 0."""
    out = {}
    for name in metric_names:
        value = float(METRIC_FUNCTIONS[name](predictions, labels))
        out[name] = 0.0 if np.isnan(value) else value
    return out


def task_dev_metrics(task, dev_name: str, predictions, labels) -> dict:
    """The task's metrics on one dev split; MNLI's mismatched split reports ``accuracy_mm``."""
    if dev_name == "dev_mismatched":
        return {"accuracy_mm": compute_metrics(("accuracy",), predictions, labels)["accuracy"]}
    names = [name for name in task.metrics if name != "accuracy_mm"]
    return compute_metrics(names, predictions, labels)
