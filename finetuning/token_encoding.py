"""A token-classification job's data and scores: words split into pieces, each word's tag on its pieces, the way back
from per-piece logits to one tag per word, and seqeval's entity scores.

Words are tokenized with ``is_split_into_words`` and cut at ``max_seq_length``. Only a word's first piece carries its
tag; its other pieces and the special tokens get -100 (no loss), unless ``label_all_tokens``: then every piece
carries the word's tag, a ``B-X`` word's later pieces ``I-X``, as the Hugging Face example does, so that no piece
but the first starts an entity. A word's tag is read off its first piece; a word cut off by truncation is predicted
``O``, so that the predictions file tags every word and the dev score counts every gold entity.

An entity is a typed chunk of words, right only when its type and both its ends match a gold entity. Precision,
recall and F1 are micro-averaged over entities in seqeval's strict mode for the task's scheme; ``accuracy`` is the
share of words tagged right; ``TYPE_precision``, ``_recall``, ``_f1`` and ``_number`` (gold entities) are per
type, as the HF ``run_ner.py`` example names them with ``--return_entity_level_metrics``.
"""
from typing import Optional

import numpy as np
from transformers import AutoConfig

from finetuning.glue_tasks import GlueTask
from finetuning.metrics import hf_evaluation
from finetuning.tokenized_data import TEST_NAME, EncodedSplit, TaskData
from finetuning.token_data import (OUTSIDE, TokenSentences, as_scheme, check_known_tags, read_token_dataset,
                                   read_token_file, tag_scheme)
from pipeline.errors import DataError

IGNORED = -100  # the label torch's cross-entropy skips
_TOKENIZE_CHUNK = 1000  # sentences per call to the tokenizer
TOKEN_METRICS = ("precision", "recall", "f1", "accuracy")
TYPE_METRICS = ("precision", "recall", "f1", "number")
_SEQEVAL_SCHEMES = {"IOB2": "IOB2", "BIOES": "IOBES", "BILOU": "BILOU"}


def _continuation_ids(labels) -> dict:
    """``{id of B-X: id of I-X}`` for the types that have both."""
    ids = {label: i for i, label in enumerate(labels)}
    return {i: ids[f"I-{label[2:]}"] for label, i in ids.items() if label.startswith("B-") and f"I-{label[2:]}" in ids}


def needs_prefix_space(tokenizer) -> bool:
    """A byte-level BPE tokenizer (RoBERTa, GPT-2) that would read each pre-split word as if it started its text;
    it should be loaded with ``add_prefix_space=True``, as the Hugging Face example does, to see words as in
    running text."""
    pre_tokenizer = getattr(getattr(tokenizer, "backend_tokenizer", None), "pre_tokenizer", None)
    return getattr(pre_tokenizer, "add_prefix_space", None) is False


def encode_sentences(tokenizer, sentences: TokenSentences, labels, max_seq_length: int,
                     label_all_tokens: bool = False) -> EncodedSplit:
    """The split's pieces, with their labels (``labels`` lists the tags in id order) when the sentences have tags."""
    if not getattr(tokenizer, "is_fast", False):
        raise DataError("token classification needs a fast tokenizer (one with word ids); drop --use_fast_tokenizer"
                        " false")
    label_id = {label: i for i, label in enumerate(labels)}
    continuation = _continuation_ids(labels) if label_all_tokens else {}
    tagged = sentences.tags is not None
    ids, types, token_labels, word_index = [], [], [], []
    for start in range(0, len(sentences), _TOKENIZE_CHUNK):
        chunk = sentences.tokens[start:start + _TOKENIZE_CHUNK]
        encoded = tokenizer(chunk, is_split_into_words=True, truncation=True, max_length=max_seq_length,
                            return_token_type_ids=True, return_attention_mask=False)
        for b, (row_ids, row_types) in enumerate(zip(encoded["input_ids"], encoded["token_type_ids"])):
            words = encoded.word_ids(b)
            firsts = np.asarray([w if w is not None and w != previous else -1
                                 for w, previous in zip(words, [None] + words[:-1])], dtype=np.int32)
            if tagged:
                word_ids = [label_id[tag] for tag in sentences.tags[start + b]]
                row_labels = [IGNORED if w is None else word_ids[w] if first >= 0 else
                              continuation.get(word_ids[w], word_ids[w]) if label_all_tokens else IGNORED
                              for w, first in zip(words, firsts)]
                token_labels.append(np.asarray(row_labels, dtype=np.int64))
            ids.append(np.asarray(row_ids, dtype=np.int32))
            types.append(np.asarray(row_types, dtype=np.int8))
            word_index.append(firsts)
    gold = np.asarray([label_id[tag] for word_tags in sentences.tags for tag in word_tags], dtype=np.int64) \
        if tagged else None
    return EncodedSplit.of_rows(ids, types, gold, sentences.ids,
                                token_labels=np.concatenate(token_labels) if tagged else None,
                                word_index=np.concatenate(word_index),
                                word_counts=np.asarray([len(words) for words in sentences.tokens], dtype=np.int64))


def word_predictions(encoded: EncodedSplit, logits_rows, labels) -> list:
    """One predicted tag per word of every row: the argmax at the word's first piece; ``O`` for a word with no
    piece (cut off by truncation)."""
    predicted = []
    for i, logits in enumerate(logits_rows):
        words = encoded.word_index[encoded.offsets[i]:encoded.offsets[i + 1]]
        tags = [OUTSIDE] * int(encoded.word_counts[i])
        firsts = np.nonzero(words >= 0)[0]
        for position, label in zip(firsts, np.asarray(logits)[firsts].argmax(axis=1)):
            tags[words[position]] = labels[label]
        predicted.append(tags)
    return predicted


def gold_tags(encoded: EncodedSplit, labels) -> list:
    """Every row's gold tags, all its words (also those truncation cut off)."""
    ends = np.cumsum(encoded.word_counts)
    return [[labels[i] for i in encoded.labels[end - count:end]] for end, count in zip(ends, encoded.word_counts)]


def entity_scores(gold: list, predicted: list, scheme: str, types=()) -> dict:
    """``precision``, ``recall``, ``f1``, ``accuracy`` and the per-type scores of each entity type in ``gold``,
    ``predicted`` or ``types``, for one list of tags per sentence; a score that divides by zero is 0."""
    import seqeval.scheme
    from seqeval.metrics import accuracy_score, classification_report

    words = sum(len(tags) for tags in gold)
    scores = {"accuracy": float(accuracy_score(gold, predicted)) if words else 0.0}
    report = {}
    if any(tag != OUTSIDE for tags in gold + predicted for tag in tags):
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
    types = sorted({label[2:] for label in task.labels if label != OUTSIDE})
    scores = entity_scores(gold_tags(encoded, task.labels), word_predictions(encoded, logits_rows, task.labels),
                           task.tag_scheme, types)
    plain = {name: scores[name] for name in task.metrics}
    named = {f"eval_{name}": value for name, value in plain.items()}
    return plain, hf_evaluation(loss, named, len(encoded), runtime_s, batches)


def _model_labels(model_args) -> Optional[tuple]:
    """The tags a finetuned token classifier was trained on (its config's id2label), or None for a model without
    named labels, so that evaluating or predicting without --do_train uses the model's own label order."""
    try:
        config = AutoConfig.from_pretrained(model_args.config_name or model_args.model_name_or_path,
                                            cache_dir=model_args.cache_dir, token=model_args.token)
    except (OSError, ValueError):
        return None  # the model loader names the problem
    labels = tuple(config.id2label[i] for i in sorted(config.id2label))
    return None if all(label == f"LABEL_{i}" for i, label in enumerate(labels)) else labels


def token_task(name: str, text_column: str, labels: tuple, scheme: str, entity_types: bool) -> GlueTask:
    """The job's task: its tags, its scheme and its metrics (``TYPE_precision``... per entity type when
    ``entity_types``)."""
    metrics = TOKEN_METRICS
    if entity_types:
        types = sorted({label[2:] for label in labels if label != OUTSIDE})
        metrics += tuple(f"{entity}_{metric}" for entity in types for metric in TYPE_METRICS)
    return GlueTask(name=name, folder="", hub_config="", hub_text_columns=(text_column,), labels=labels,
                    metrics=metrics, primary_metric="f1", tag_scheme=scheme)


def load_token_task_data(model_args, data_args, ner_args, args, tokenizer, log=print) -> TaskData:
    """The tokenized splits that ``--do_train``/``--do_eval``/``--do_predict`` need, from the files or from
    --dataset_name's train/validation/test splits (no --test_file: nothing to predict). The tags are the training
    data's; without --do_train, a finetuned model's own tags."""
    read = {}
    for split, path, wanted, rows in (("train", data_args.train_file, args.do_train, data_args.max_train_samples),
                                      ("validation", data_args.validation_file, args.do_eval,
                                       data_args.max_eval_samples),
                                      (TEST_NAME, data_args.test_file, args.do_predict, data_args.max_predict_samples)):
        columns = (split != TEST_NAME, ner_args.text_column_name, data_args.label_column_name, ner_args.task)
        if wanted and data_args.dataset_name:
            read[split] = read_token_dataset(data_args.dataset_name, data_args.dataset_config_name, split, *columns,
                                             cache_dir=model_args.cache_dir, token=model_args.token).head(rows)
        elif wanted and path:
            read[split] = read_token_file(path, *columns).head(rows)
    labeled = [sentences for split, sentences in read.items() if split != TEST_NAME]
    if not labeled:
        raise DataError("the tags of a token-classification task come from its training or validation data: give"
                        " --train_file or --validation_file")
    scheme, found = tag_scheme(labeled)
    read = {split: as_scheme(sentences, scheme) for split, sentences in read.items()}
    labels = None if "train" in read else _model_labels(model_args)
    labels = labels or tuple(sorted({tag for tags in (read.get("train") or read["validation"]).tags for tag in tags}))
    if "validation" in read:
        check_known_tags(read["validation"], labels)
    log(f"tags ({found}{f', read as {scheme}' if found != scheme else ''}): {', '.join(labels)}")
    task = token_task(ner_args.task, ner_args.text_column_name or "tokens", labels, scheme,
                      ner_args.return_entity_level_metrics)

    def encoded(split):
        return encode_sentences(tokenizer, read[split], labels, data_args.max_seq_length, ner_args.label_all_tokens)

    return TaskData(task, encoded("train") if "train" in read else None,
                    {"validation": encoded("validation")} if "validation" in read else {},
                    {TEST_NAME: (task, encoded(TEST_NAME))} if TEST_NAME in read else {})
