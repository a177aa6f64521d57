"""Entity-level scores of a token-classification job, computed by seqeval.

An entity is a chunk of words with its type; a predicted entity is right only when its type and both its ends match
a gold entity. Precision, recall and F1 are micro-averaged over all entities, in seqeval's strict mode for the
task's scheme (IOB2, IOBES for BIOES, BILOU; see ``finetuning.token_data``): a chunk that is not valid in the
scheme, e.g. an ``I-X`` with no ``B-X`` before it in IOB2, is not an entity. ``accuracy`` is the share of words
whose tag is right (``O`` words included). Per entity type: ``TYPE_precision``, ``TYPE_recall``, ``TYPE_f1`` and
``TYPE_number`` (its gold entities), as the Hugging Face ``run_ner.py`` example names them with
``--return_entity_level_metrics``.
"""
from finetuning.metrics import hf_evaluation
from finetuning.token_encoding import TYPE_METRICS, gold_tags, word_predictions

_SEQEVAL_SCHEMES = {"IOB2": "IOB2", "BIOES": "IOBES", "BILOU": "BILOU"}


def entity_scores(gold: list, predicted: list, scheme: str, types=()) -> dict:
    """``precision``, ``recall``, ``f1``, ``accuracy`` and, for each entity type found in ``gold`` or
    ``predicted`` or named in ``types``, its ``TYPE_precision``, ``TYPE_recall``, ``TYPE_f1`` and ``TYPE_number``.
    ``gold`` and ``predicted`` hold one list of tags per sentence. With no entity to find or found, a score that
    divides by zero is 0."""
    import seqeval.scheme
    from seqeval.metrics import accuracy_score, classification_report

    words = sum(len(tags) for tags in gold)
    scores = {"accuracy": float(accuracy_score(gold, predicted)) if words else 0.0}
    report = {}
    if any(tag != "O" for tags in gold + predicted for tag in tags):
        report = classification_report(gold, predicted, mode="strict", zero_division=0, output_dict=True,
                                       scheme=getattr(seqeval.scheme, _SEQEVAL_SCHEMES[scheme]))
    micro = report.pop("micro avg", {})
    scores.update(precision=float(micro.get("precision", 0.0)), recall=float(micro.get("recall", 0.0)),
                  f1=float(micro.get("f1-score", 0.0)))
    for entity in sorted(set(types) | {name for name in report if not name.endswith(" avg")}):
        row = report.get(entity, {})
        values = (row.get("precision", 0.0), row.get("recall", 0.0), row.get("f1-score", 0.0), row.get("support", 0))
        scores.update({f"{entity}_{metric}": (int if metric == "number" else float)(value)
                       for metric, value in zip(TYPE_METRICS, values)})
    return scores


def token_dev_metrics(task, encoded, logits_rows, loss, runtime_s: float, batches: int) -> tuple:
    """(the task's metrics, the same as the HF example names them: ``eval_precision``, ..., ``eval_loss``,
    ``eval_samples`` = sentences, ``eval_runtime``...) of one dev split, from the model's per-piece logits."""
    types = sorted({label[2:] for label in task.labels if label != "O"})
    scores = entity_scores(gold_tags(encoded, task.labels), word_predictions(encoded, logits_rows, task.labels),
                           task.tag_scheme, types)
    plain = {name: scores[name] for name in task.metrics}
    named = {f"eval_{name}": value for name, value in plain.items()}
    return plain, hf_evaluation(loss, named, len(encoded), runtime_s, batches)
