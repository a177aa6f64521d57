"""Everything a job reads, tokenized: a GLUE task (local folder or the Hub) or a task of one's own (files, a dataset).

Every split the flags need is read before any training, so that a data problem stops the job at once.
"""
from dataclasses import dataclass
from typing import Optional

from finetuning.tokenized_cache import EncodedSplit, encode_split, load_encoded, tokenizer_fingerprint
from finetuning.glue_tasks import GlueTask, get_task, predicting_task
from pipeline.errors import DataError

OWN_TEST_NAME = "test"  # own data's predictions go to predictions_test.tsv


@dataclass
class TaskData:
    task: GlueTask  # labels, metrics, regression
    train: Optional[EncodedSplit]
    dev: dict  # dev name -> EncodedSplit; the first one is also evaluated during training
    test: dict  # predictions file name -> (GlueTask, EncodedSplit)


def _glue(data_args, args, tokenizer) -> TaskData:
    task = get_task(data_args.task_name)
    if task.train is None:
        raise DataError(f"{task.name} has no training data: it is predicted by the {predicting_task(task.name)} jobs")
    key = tokenizer_fingerprint(tokenizer)

    def encoded(kind, name, rows, for_task=task):
        return load_encoded(for_task, kind, name, tokenizer, data_args.max_seq_length, data_args.data_dir, rows or 0,
                            data_args.tokenized_cache_dir, data_args.hub_dataset, key, data_args.overwrite_cache,
                            data_args.malformed_rows)

    train = encoded("train", "train", data_args.max_train_samples) if args.do_train else None
    dev = {name: encoded("dev", name, data_args.max_eval_samples) for name in task.dev} if args.do_eval else {}
    test = {}
    if args.do_predict:
        for owner in [task, *task.riders]:  # MNLI's model also scores the diagnostic set
            test.update({name: (owner, encoded("test", name, data_args.max_predict_samples, for_task=owner))
                         for name in owner.test})
    return TaskData(task, train, dev, test)


def _own(data_args, model_args, args, tokenizer) -> TaskData:
    from finetuning.own_data import own_task

    if data_args.dataset_name:  # the training split also names the labels
        wanted = {"train": True, "validation": args.do_eval, "test": args.do_predict}
    else:
        wanted = {"train": bool(data_args.train_file), "validation": bool(data_args.validation_file),
                  "test": bool(data_args.test_file) and args.do_predict}
    task, splits = own_task(data_args, wanted, model_args.cache_dir, model_args.token)

    def encoded(split, rows):
        return encode_split(tokenizer, splits[split].head(rows or 0), data_args.max_seq_length, task.is_regression)

    return TaskData(task, encoded("train", data_args.max_train_samples) if args.do_train else None,
                    {"validation": encoded("validation", data_args.max_eval_samples)} if args.do_eval else {},
                    {OWN_TEST_NAME: (task, encoded("test", data_args.max_predict_samples))} if args.do_predict else {})


def load_task_data(model_args, data_args, args, tokenizer) -> TaskData:
    """The tokenized splits that ``--do_train``/``--do_eval``/``--do_predict`` need."""
    if data_args.task_name:
        return _glue(data_args, args, tokenizer)
    return _own(data_args, model_args, args, tokenizer)
