"""The flags ``run_ner.py`` adds to ``run_glue.py``'s, in the Hugging Face ``run_ner.py`` example's spelling, and the
check of its data flags.

``--task_name`` (ner, pos or chunk, as in the example) does not name a GLUE task here: it picks the JSON tag column
``<task>_tags`` when there is no ``tags`` column, and names the task in the results. Tags must be entity tags of
a scheme (``finetuning.token_data``): part-of-speech tags (NN, VBZ, ...) are refused with a one-line error.
"""
from dataclasses import dataclass, field
from functools import partial
from typing import Optional

from finetuning.arguments import finalize

TASKS = ("ner", "pos", "chunk")


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class NerArguments:
    text_column_name: Optional[str] = field(default=None, metadata=_help(
        "JSON lines: the column of each sentence's token list (default tokens); --label_column_name names the tag"
        " list's (default tags, else <task_name>_tags, e.g. ner_tags)"))
    label_all_tokens: bool = field(default=False, metadata=_help(
        "train every piece of a word on its tag (B-X's later pieces on I-X), not only its first piece"))
    return_entity_level_metrics: bool = field(default=False, metadata=_help(
        "also report each entity type's precision, recall, f1 and number (TYPE_f1, ...)"))
    preprocessing_num_workers: Optional[int] = field(default=None, metadata=_help(
        "accepted; no effect here (the tokenizer is fast enough in one process)"))
    task: str = field(default="ner", init=False)  # from --task_name


def _token_data_source(ner_args: NerArguments, data_args, args, problems: list, notes: list) -> None:
    """--task_name moves to ``ner_args.task``; the data is --dataset_name's splits, or files of tokens and tags
    (any name: .json/.jsonl are JSON lines, the rest CoNLL)."""
    task = (data_args.task_name or "ner").lower()
    if task not in TASKS:
        problems.append(f"--task_name {data_args.task_name}: expected one of {', '.join(TASKS)}")
    ner_args.task, data_args.task_name = task, None
    if ner_args.preprocessing_num_workers is not None:
        notes.append("note: --preprocessing_num_workers has no effect here")
    if data_args.dataset_name:
        return
    needed = {"train_file": args.do_train, "validation_file": args.do_eval}
    missing = [f"--{name}" for name, need in needed.items() if need and not getattr(data_args, name)]
    if missing:
        problems.append(f"no data: give the files your flags need ({', '.join(missing)})")
    if args.do_predict and not data_args.test_file:
        notes.append("note: --do_predict without --test_file: nothing to predict")


def finalize_ner(model_args, data_args, args, ner_args: NerArguments, gpu_available: bool) -> list:
    """``finalize`` with run_ner.py's data flags; returns the notes to print, raises ``ConfigError``."""
    return finalize(model_args, data_args, args, gpu_available, data_source=partial(_token_data_source, ner_args))
