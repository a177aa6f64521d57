"""Read one split of a GLUE task, from a local folder in the official layout or from ``nyu-mll/glue`` on the Hub,
as a ``GlueSplit``: the text columns, class ids in the order of the task table's ``labels`` (the Hub's integer
order; floats for STS-B, ``None`` on test splits) and the row index the GLUE server expects in a submission.
"""
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from finetuning.glue_tasks import GlueTask, LocalSplit
from pipeline.errors import DataError, first_line

log = logging.getLogger(__name__)

HUB_DATASET = "nyu-mll/glue"
# The row id column (GLUE's test files: index, QQP's: id; the Hub and own files: idx); without one, the row number.
INDEX_COLUMNS = ("idx", "index", "id")


@dataclass
class GlueSplit:
    text_a: list
    text_b: Optional[list]  # None for single-sentence tasks
    labels: Optional[list]  # class ids (int) or scores (float); None for unlabeled test splits
    index: list  # row ids as strings, in file order

    def __len__(self) -> int:
        return len(self.text_a)

    def head(self, n: int) -> "GlueSplit":
        """The first ``n`` rows (all of them when ``n`` is 0)."""
        if not n or n >= len(self):
            return self
        cut = slice(0, n)
        return GlueSplit(self.text_a[cut], self.text_b[cut] if self.text_b is not None else None,
                         self.labels[cut] if self.labels is not None else None, self.index[cut])


def local_split_path(glue_dir, task: GlueTask, split: LocalSplit) -> Path:
    return Path(glue_dir) / task.folder / split.file


def glue_splits(task, train: bool = True, dev: bool = True, test: bool = True, max_train=0, max_eval=0,
                max_test=0) -> list:
    """(task owning the split, kind, split name, row cap) of every split a job of ``task`` reads: train, dev, and
    the test splits of the task and of its riders (MNLI's model also scores the diagnostic set)."""
    splits = [(task, "train", "train", max_train or 0)] * train
    splits += [(task, "dev", name, max_eval or 0) for name in task.dev] * dev
    tests = [(owner, "test", name, max_test or 0) for owner in [task, *task.riders] for name in owner.test]
    return splits + tests * test


def local_task_files(glue_dir, task: GlueTask) -> list:
    """Every file a job of ``task`` reads in the local layout (``glue_splits``)."""
    return [local_split_path(glue_dir, owner, locate_split(owner, kind, name)[0])
            for owner, kind, name, _ in glue_splits(task)]


def _label_id(task: GlueTask, value: str, path: Path, line: int):
    if task.is_regression:
        try:
            return float(value)
        except ValueError:
            raise DataError(f"{path}:{line}: label {value!r} is not a number (STS-B scores are floats in [0, 5])")
    if value not in task.labels:
        raise DataError(f"{path}:{line}: unknown label {value!r} for {task.name} (expected one of"
                        f" {', '.join(task.labels)}); check that the file belongs to {task.name}")
    return task.labels.index(value)


def _column_positions(header: list, split: LocalSplit, path: Path) -> tuple:
    wanted = list(split.text_columns) + ([split.label_column] if split.label_column is not None else [])
    if not split.has_header:
        return tuple(wanted), None
    missing = [name for name in wanted if name not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(map(repr, missing))} (header has:"
                        f" {', '.join(header)}); is this the official GLUE file?")
    index_column = next((header.index(name) for name in INDEX_COLUMNS if name in header), None)
    return tuple(header.index(name) for name in wanted), index_column


def _tsv_rows(path: Path):
    """(line number, cells) of every non-blank line. Lines end at '\\n' only (a stray '\\r' inside a sentence stays
    in it), as the submission check counts them; cells are split at every tab, with no quoting: GLUE sentences hold
    unbalanced quotes (``" the witness "``) that a CSV dialect would swallow across lines. ``utf-8-sig`` drops the
    BOM that starts MRPC's header."""
    number = 0
    try:
        with open(path, encoding="utf-8-sig", newline="\n") as f:
            for number, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield number, line.split("\t")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text after line {number} ({e.reason}); GLUE files are UTF-8") from None


def _malformed(path: Path, expected: int, bad: list, is_test: bool, mode: str) -> None:
    """Rows with another number of columns: an error naming the first, or with ``mode`` skip a warning that counts
    the rows dropped. Test rows are never dropped: the server wants one prediction per row."""
    line, found = bad[0]
    where = (f"{path}:{line}: {found} tab-separated column(s), expected {expected}"
             f"{f' ({len(bad)} such rows in the file)' if len(bad) > 1 else ''}")
    if is_test:
        raise DataError(f"{where}; a test file must keep every row (one prediction each), so fix that line")
    if mode != "skip":
        raise DataError(f"{where}; fix the file, or set FINETUNE.MALFORMED_ROWS skip (run_glue.py: --malformed_rows"
                        f" skip) to drop such rows")
    log.warning(f"{path}: skipped {len(bad)} row(s) without {expected} columns (the first at line {line})")


def read_local_split(glue_dir, task: GlueTask, split: LocalSplit, malformed_rows: str = "error") -> GlueSplit:
    """One TSV of the official layout as a ``GlueSplit``. Every row must have the header's number of columns (a
    headerless file: the table's ``num_columns``; blank lines and empty cells after the last column are ignored):
    nothing is dropped silently."""
    path = local_split_path(glue_dir, task, split)
    if not path.is_file():
        raise DataError(f"GLUE file not found: {path} (download GLUE into FINETUNE.GLUE_DIR in the official layout,"
                        f" or leave GLUE_DIR empty to use {HUB_DATASET} from the Hub)")
    rows = _tsv_rows(path)
    header = None
    if split.has_header:
        first = next(rows, None)
        if first is None:
            raise DataError(f"{path}: the file is empty")
        header = [name.strip() for name in first[1]]
    positions, index_column = _column_positions(header, split, path)
    expected = len(header) if header is not None else split.num_columns or max(positions) + 1
    n_text = len(split.text_columns)
    text_a, text_b, labels, index, bad = [], [], [], [], []
    for line, cells in rows:
        if len(cells) > expected and not any(cell.strip() for cell in cells[expected:]):
            cells = cells[:expected]  # trailing tabs: nothing is lost
        if len(cells) != expected:
            bad.append((line, len(cells)))
            continue
        text_a.append(cells[positions[0]])
        if n_text > 1:
            text_b.append(cells[positions[1]])
        if split.label_column is not None:
            labels.append(_label_id(task, cells[positions[n_text]].strip(), path, line))
        index.append(cells[index_column].strip() if index_column is not None else str(len(index)))
    if bad:
        _malformed(path, expected, bad, split.label_column is None, malformed_rows)
    if not text_a:
        raise DataError(f"{path}: no data rows")
    return GlueSplit(text_a, text_b if n_text > 1 else None, labels if split.label_column is not None else None,
                     index)


def open_dataset(problem: str, *args, advice: str = "", **kwargs):
    """``datasets.load_dataset(*args, **kwargs)``; any error of it is a one-line DataError: ``problem``, the error's
    first line, then ``advice``."""
    import datasets

    try:
        return datasets.load_dataset(*args, **kwargs)
    except Exception as e:  # network, auth, parse and missing-split errors: all the data's fault to the user
        raise DataError(f"{problem}: {first_line(e)}{advice}")


def read_hub_split(task: GlueTask, split_name: str, labeled: bool, hub_path: str = HUB_DATASET) -> GlueSplit:
    """One split of ``nyu-mll/glue`` (or a local copy in the same layout at ``hub_path``) as a ``GlueSplit``."""
    data = open_dataset(f"could not load {hub_path} ({task.hub_config}, {split_name})", hub_path, task.hub_config,
                        split=split_name, advice="; set FINETUNE.GLUE_DIR (or --data_dir) to a local GLUE folder when"
                                                 " offline")
    missing = [c for c in (*task.hub_text_columns, "label", "idx") if c not in data.column_names]
    if missing:
        raise DataError(f"{hub_path} ({task.hub_config}, {split_name}): missing column(s) {', '.join(missing)}")
    columns = data.to_dict()
    labels = [(float if task.is_regression else int)(v) for v in columns["label"]] if labeled else None
    text_b = columns[task.hub_text_columns[1]] if len(task.hub_text_columns) > 1 else None
    return GlueSplit(columns[task.hub_text_columns[0]], text_b, labels, [str(i) for i in columns["idx"]])


def locate_split(task: GlueTask, kind: str, name: str) -> tuple:
    """(``LocalSplit``, Hub split name) of a split: ``kind`` is train | dev | test, ``name`` the dev name (``dev``,
    ``dev_matched``…) or the submission name."""
    if kind == "train":
        return task.train, "train"
    return (task.dev[name], task.hub_dev[name]) if kind == "dev" else (task.test[name], task.hub_test[name])


def load_split(task: GlueTask, kind: str, name: str, data_dir: str = "", hub_path: str = HUB_DATASET,
               malformed_rows: str = "error") -> GlueSplit:
    """A split (see ``locate_split``) from ``data_dir``, else from the Hub; ``malformed_rows`` is what a local file's
    malformed train or dev row does (see ``read_local_split``)."""
    local, hub_name = locate_split(task, kind, name)
    if data_dir:
        return read_local_split(data_dir, task, local, malformed_rows)
    return read_hub_split(task, hub_name, kind != "test", hub_path)
