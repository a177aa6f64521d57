"""A task of one's own: CSV/JSON files (``--train_file`` ...) or a hub dataset (``--dataset_name``), read the way the
Hugging Face ``run_glue.py`` example reads them.

The label is the column ``label``: floats make a regression task, anything else (ints, strings, a ``ClassLabel``)
a classification over the sorted distinct training labels. The text is ``sentence1``/``sentence2`` when both exist,
else the first two text columns, else the first one (a numeric ``idx`` column is not text here, unlike in the
example, which would tokenize it). The task it returns is a ``GlueTask`` whose labels, metrics and regression flag
drive the job like a GLUE task's; its metrics are accuracy, or mse/pearson/spearman for regression.
"""
from pathlib import Path

from finetuning.glue_data import INDEX_COLUMNS, GlueSplit, open_dataset
from finetuning.glue_tasks import GlueTask
from pipeline.errors import DataError

TASK_NAME = "custom"
LABEL_COLUMN = "label"
_TEXT_TYPES = ("string", "large_string")
_SPLITS = {"train": "train_file", "validation": "validation_file", "test": "test_file"}


def load_raw_splits(data_args, wanted: dict, cache_dir=None, token=None) -> dict:
    """``{split: (datasets.Dataset, where)}`` for the wanted splits (train/validation/test)."""
    raw = {}
    name, config = data_args.dataset_name, data_args.dataset_config_name
    for split in [split for split, needed in wanted.items() if needed]:
        if name:
            problem = f"could not load split {split!r} of {name}{f' ({config})' if config else ''}"
            raw[split] = (open_dataset(problem, name, config, split=split, cache_dir=cache_dir, token=token),
                          f"{name} [{split}]")
            continue
        path = getattr(data_args, _SPLITS[split])
        if not Path(path).is_file():
            raise DataError(f"data file not found: {path}")
        builder = "csv" if path.lower().endswith(".csv") else "json"
        raw[split] = (open_dataset(f"{path}: cannot read it as {builder.upper()}", builder,
                                   data_files={"data": path}, split="data", cache_dir=cache_dir), path)
    return raw


def text_columns(data, where: str) -> tuple:
    """``sentence1``/``sentence2`` when both exist, else the first two text columns, else the first one."""
    names = [name for name in data.column_names if name != LABEL_COLUMN]
    if "sentence1" in names and "sentence2" in names:
        return "sentence1", "sentence2"
    texts = [name for name in names if getattr(data.features[name], "dtype", None) in _TEXT_TYPES]
    if not texts:
        raise DataError(f"{where}: no text column (columns: {', '.join(data.column_names)}); give one or two text"
                        f" columns, e.g. sentence1 and sentence2, and a {LABEL_COLUMN!r} column")
    return tuple(texts[:2])


def _label_values(data, where: str) -> list:
    if LABEL_COLUMN not in data.column_names:
        raise DataError(f"{where}: no {LABEL_COLUMN!r} column (columns: {', '.join(data.column_names)})")
    values = list(data[LABEL_COLUMN])
    if any(value is None for value in values):
        raise DataError(f"{where}: row {values.index(None) + 1} has no label")
    return values


def _label_names(data, where: str):
    """The class names in id order, or None for a regression task (float labels)."""
    feature = data.features.get(LABEL_COLUMN)
    if hasattr(feature, "names"):  # a ClassLabel: its ids are the labels already
        return tuple(feature.names)
    if getattr(feature, "dtype", "").startswith("float"):
        return None
    return tuple(sorted(set(_label_values(data, where))))


def _to_split(data, where: str, columns: tuple, names, labeled: bool) -> GlueSplit:
    missing = [name for name in columns if name not in data.column_names]
    if missing:
        raise DataError(f"{where}: missing text column(s) {', '.join(missing)} (columns:"
                        f" {', '.join(data.column_names)})")
    texts = [["" if text is None else str(text) for text in data[name]] for name in columns]
    labels = None
    if labeled:
        values = _label_values(data, where)
        if names is None:
            labels = [float(value) for value in values]
        elif hasattr(data.features[LABEL_COLUMN], "names"):
            labels = [int(value) for value in values]
        else:
            ids = {value: i for i, value in enumerate(names)}
            unknown = sorted({str(value) for value in values if value not in ids})
            if unknown:
                raise DataError(f"{where}: label(s) {', '.join(unknown)} do not occur in the training data (labels:"
                                f" {', '.join(map(str, names))})")
            labels = [ids[value] for value in values]
    index_column = next((name for name in INDEX_COLUMNS if name in data.column_names), None)
    index = [str(i) for i in (data[index_column] if index_column else range(len(data)))]
    return GlueSplit(texts[0], texts[1] if len(texts) > 1 else None, labels, index)


def own_task(data_args, wanted: dict, cache_dir=None, token=None) -> tuple:
    """(the task, ``{split: GlueSplit}``) for the wanted splits of one's own data."""
    raw = load_raw_splits(data_args, wanted, cache_dir, token)
    labeled = raw.get("train") or raw.get("validation")
    if labeled is None:
        raise DataError("the labels of one's own task come from its training or validation data: give --train_file"
                        " or --validation_file (or a --dataset_name with a train or validation split)")
    columns = text_columns(*labeled)
    names = _label_names(*labeled)
    splits = {name: _to_split(data, where, columns, names, name != "test") for name, (data, where) in raw.items()}
    metrics = ("mse", "pearson", "spearman") if names is None else ("accuracy",)
    task = GlueTask(name=TASK_NAME, folder="", hub_config=data_args.dataset_name or "", hub_text_columns=columns,
                    labels=None if names is None else tuple(str(name) for name in names), metrics=metrics,
                    primary_metric=metrics[0], train=None, dev={}, test={}, hub_dev={}, hub_test={})
    return task, splits
