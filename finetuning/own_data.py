"""A task of one's own: data files (``--train_file`` ...: CSV, TSV, JSON lines, Parquet) or a hub dataset
(``--dataset_name``), read as the Hugging Face ``run_glue.py``/``run_classification.py`` examples read them, into a
``GlueTask`` whose labels, metrics and regression flag drive the job like a GLUE task's. Float labels make a
regression task (or ``--task_type``), any others a classification over the sorted distinct training labels. A
problem is one line naming the file and, where there is one, the row.
"""
from pathlib import Path

from finetuning.glue_data import INDEX_COLUMNS, GlueSplit, open_dataset
from finetuning.glue_tasks import GlueTask
from pipeline.errors import ConfigError, DataError
from pipeline.own_task_fields import reported_metrics

TASK_NAME = "custom"
LABEL_COLUMN = "label"
_TEXT_TYPES = ("string", "large_string")
_SPLITS = {"train": "train_file", "validation": "validation_file", "test": "test_file"}
# File suffix -> (datasets builder, its options).
FILE_FORMATS = {".csv": ("csv", {}), ".tsv": ("csv", {"delimiter": "\t"}), ".json": ("json", {}),
                ".jsonl": ("json", {}), ".parquet": ("parquet", {})}


def _job_metrics(task_type: str, positive_label) -> tuple:
    """What a job reports: the task type's metrics (``pipeline.own_task_fields``), and for regression also its
    mean squared error, which the search cannot select on (lower is better)."""
    return reported_metrics(task_type, positive_label) + ("mse",) * (task_type == "regression")


def own_metrics(data_args, is_regression=None) -> tuple:
    """The metrics a job of one's own task reports, ``--metric_name`` first (it must fit the task type, which
    ``is_regression`` or ``--task_type`` tell; while neither does, any metric may fit)."""
    if is_regression is None and data_args.task_type:
        is_regression = data_args.task_type == "regression"
    if is_regression is None:
        metrics = _job_metrics("classification", True) + _job_metrics("regression", None)
    else:
        metrics = _job_metrics("regression" if is_regression else "classification", data_args.positive_label)
    wanted = data_args.metric_name
    if wanted and wanted not in metrics:
        why = " (it needs --positive_label)" if wanted == "f1" else ""
        raise ConfigError(f"--metric_name {wanted} does not fit this task{why}: use one of {', '.join(metrics)}")
    return (wanted, *[m for m in metrics if m != wanted]) if wanted else metrics


def count_rows(path) -> int:
    """Training rows of a data file, counted cheaply: Parquet's metadata, CoNLL's sentences, else non-blank lines
    (less a CSV/TSV header)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    tabular = suffix in (".csv", ".tsv", ".json", ".jsonl")
    rows, previous = 0, b""
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            rows += bool(line) and (tabular or not previous)  # CoNLL: a sentence starts after a blank line
            previous = line
    return max(0, rows - (suffix in (".csv", ".tsv")))


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
        suffix = Path(path).suffix.lower()
        builder, options = FILE_FORMATS.get(suffix, FILE_FORMATS[".json"])
        if Path(path).stat().st_size == 0:
            raise DataError(f"{path}: the file is empty; it needs a header and rows")
        try:
            data = open_dataset(f"{path}: cannot read it as {suffix.lstrip('.').upper()}", builder,
                                data_files={"data": path}, split="data", cache_dir=cache_dir, **options)
        except DataError:  # the reader's own words for a header-only file are about its internals
            if count_rows(path) == 0:
                raise DataError(f"{path}: no rows (only a header?); the task needs labelled rows") from None
            raise
        if len(data) == 0:  # e.g. a JSON file holding an empty list
            raise DataError(f"{path}: no rows; the task needs labelled rows")
        raw[split] = (data, path)
    return raw


def text_columns(data, where: str, label_column: str = LABEL_COLUMN, wanted: str = None) -> tuple:
    """``wanted`` (one name, or two separated by a comma) when given, else ``sentence1``/``sentence2`` when both
    exist, else the first two text columns, else the first one (a numeric ``idx`` is not text, unlike in the HF
    example, which would tokenize it)."""
    if wanted:
        return tuple(name.strip() for name in wanted.split(","))
    names = [name for name in data.column_names if name != label_column]
    if "sentence1" in names and "sentence2" in names:
        return "sentence1", "sentence2"
    texts = [name for name in names if getattr(data.features[name], "dtype", None) in _TEXT_TYPES]
    if not texts:
        raise DataError(f"{where}: no text column (columns: {', '.join(data.column_names)}); give one or two text"
                        f" columns, e.g. sentence1 and sentence2, and a {label_column!r} column")
    return tuple(texts[:2])


def _label_values(data, where: str, column: str) -> list:
    if column not in data.column_names:
        raise DataError(f"{where}: no label column {column!r} (columns: {', '.join(data.column_names)}); name it with"
                        f" LABEL_COLUMN (--label_column_name)")
    values = list(data[column])
    row = next((i for i, value in enumerate(values) if value is None or value == ""), None)
    if row is not None:
        raise DataError(f"{where}: row {row + 1} has no label")
    return values


def _label_names(data, where: str, column: str, task_type):
    """The class names in id order, or None for a regression task (float labels, or ``task_type`` regression)."""
    feature = data.features.get(column)
    if task_type == "regression" or (task_type is None and getattr(feature, "dtype", "").startswith("float")):
        return None
    if hasattr(feature, "names"):  # a ClassLabel: its ids are the labels already
        return tuple(feature.names)
    return tuple(sorted(set(_label_values(data, where, column))))


def _labels(data, where: str, column: str, names) -> list:
    values = _label_values(data, where, column)
    if names is None:
        scores = []
        for row, value in enumerate(values, start=1):
            try:
                scores.append(float(value))
            except (TypeError, ValueError):
                raise DataError(f"{where}: row {row}: label {value!r} is not a number (a regression task)") from None
        return scores
    if hasattr(data.features[column], "names"):
        return [int(value) for value in values]
    ids = {value: i for i, value in enumerate(names)}
    for row, value in enumerate(values):
        if value not in ids:
            raise DataError(f"{where}: row {row + 1}: label {value!r} does not occur in the training data (labels:"
                            f" {', '.join(map(str, names))})")
    return [ids[value] for value in values]


def _to_split(data, where: str, columns: tuple, label_column: str, names, labeled: bool,
              id_column: str = None) -> GlueSplit:
    missing = [name for name in columns if name not in data.column_names]
    if missing:
        raise DataError(f"{where}: no text column {', '.join(map(repr, missing))} (columns:"
                        f" {', '.join(data.column_names)}); name the text with TEXT_COLUMNS (--text_column_names)")
    texts = [["" if text is None else str(text) for text in data[name]] for name in columns]
    labels = _labels(data, where, label_column, names) if labeled else None
    if id_column and id_column not in data.column_names:
        raise DataError(f"{where}: no id column {id_column!r} (columns: {', '.join(data.column_names)})")
    index_column = id_column or next((name for name in INDEX_COLUMNS if name in data.column_names), None)
    index = [str(i) for i in (data[index_column] if index_column else range(len(data)))]
    return GlueSplit(texts[0], texts[1] if len(texts) > 1 else None, labels, index)


def own_task(data_args, wanted: dict, cache_dir=None, token=None) -> tuple:
    """(the task, ``{split: GlueSplit}``) for the wanted splits of one's own data."""
    raw = load_raw_splits(data_args, wanted, cache_dir, token)
    labeled = raw.get("train") or raw.get("validation")
    if labeled is None:
        raise DataError("the labels of one's own task come from its training or validation data: give --train_file"
                        " or --validation_file (or a --dataset_name with a train or validation split)")
    label_column = data_args.label_column_name or LABEL_COLUMN
    columns = text_columns(labeled[0], labeled[1], label_column, data_args.text_column_names)
    names = _label_names(*labeled, label_column, data_args.task_type)
    splits = {name: _to_split(data, where, columns, label_column, names, name != "test", data_args.id_column_name)
              for name, (data, where) in raw.items()}
    labels = None if names is None else tuple(str(name) for name in names)
    positive = 1
    if data_args.positive_label and labels is not None:
        if data_args.positive_label not in labels:
            raise DataError(f"{labeled[1]}: --positive_label {data_args.positive_label!r} is not a training label"
                            f" (labels: {', '.join(labels)})")
        positive = labels.index(data_args.positive_label)
    try:
        metrics = own_metrics(data_args, names is None)
    except ConfigError as e:
        raise DataError(f"{labeled[1]}: {e}") from None
    task = GlueTask(name=TASK_NAME, folder="", hub_config=data_args.dataset_name or "", hub_text_columns=columns,
                    labels=labels, metrics=metrics, primary_metric=metrics[0], positive_label=positive)
    return task, splits
