"""A job's result files: those of the HF ``run_glue.py`` example plus the keys result collection reads.

``eval_results.json`` holds the task's dev metrics under the task table's names (``accuracy``, ``f1``, ``mcc``,
``accuracy_mm``, ... and ``eval_loss``: what ``scripts/job_results.py`` reads) and the HF example's view of the
same evaluation (``eval_accuracy``, ``eval_f1``, ``eval_matthews_correlation``, ``eval_combined_score``,
``eval_samples``, ``eval_runtime``, ..., MNLI's mismatched split with the suffix ``_mm``). ``train_results.json``
holds ``train_loss``, ``train_runtime``, ``train_samples``, ``train_samples_per_second``,
``train_steps_per_second`` and ``epoch``; ``all_results.json`` both.
"""
from pathlib import Path

from finetuning.metrics import hf_metric_name, task_dev_metrics
from pipeline.manifest import read_json, write_json_atomic

RESULT_FILES = ("all_results.json", "train_results.json", "eval_results.json", "trainer_state.json")
MISMATCHED = "dev_mismatched"


def dev_metrics(task, dev_name: str, logits, labels, loss, runtime_s: float, batches: int) -> tuple:
    """(metrics under the task table's names, the same under the HF example's ``eval_*`` names) of one dev split."""
    predictions = logits[:, 0] if task.is_regression else logits.argmax(axis=1)
    plain = task_dev_metrics(task, dev_name, predictions, labels)
    scores = {f"eval_{hf_metric_name(name.removesuffix('_mm'))}": value for name, value in plain.items()}
    if len(scores) > 1:
        scores["eval_combined_score"] = sum(scores.values()) / len(scores)
    runtime_s = max(runtime_s, 1e-9)
    hf = {"eval_loss": loss, **scores, "eval_samples": len(labels), "eval_runtime": round(runtime_s, 4),
          "eval_samples_per_second": round(len(labels) / runtime_s, 3),
          "eval_steps_per_second": round(batches / runtime_s, 3)}
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
        write_json_atomic(out / "eval_results.json", evaluation)
    combined = read_json(out / "all_results.json")
    write_json_atomic(out / "all_results.json", {**(combined if isinstance(combined, dict) else {}), **(train or {}),
                                                 **(evaluation or {})})
