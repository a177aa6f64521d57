"""Check every ``DATASET.HUGGINGFACE_DATASETS`` entry before any work starts, asking what ``datasets`` itself asks
when loading (the repo or folder exists, is not a loading script, has the subset, the split and the text column), so
that a failure names the entry and the fix instead of surfacing as a traceback in the middle of the dataset stage.
Hub repos are checked only when the hub answers (a run may still read a cached copy); local data always is.
"""
import difflib
import functools
import glob
import os
from pathlib import Path

from pipeline.defaults import is_local_path
from pipeline.errors import ConfigError

from dataset.hub_entries import PARQUET_EXPORT, HubEntry

KEY = "DATASET.HUGGINGFACE_DATASETS"
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
PROBE_TIMEOUT_S = 5.0
# Script datasets of the ExtremeBERT recipes and the Parquet repos that hold the same corpora today.
REPLACEMENTS = {
    "wikipedia": "[wikimedia/wikipedia, 20231101.en] (Parquet, dump of 2023-11-01)",
    "legacy-datasets/wikipedia": "[wikimedia/wikipedia, 20231101.en] (Parquet, dump of 2023-11-01)",
    "bookcorpusopen": '[lucadiliello/bookcorpusopen, "", text] (Parquet)',
    "defunct-datasets/bookcorpusopen": '[lucadiliello/bookcorpusopen, "", text] (Parquet)',
}


class _EntryProblem(Exception):
    """What is wrong with one entry (one line, without the key and entry, which the caller adds)."""


def hub_offline_reason() -> str:
    """Why the hub cannot be asked now ("" when it can): an offline variable is set, or the hub does not answer."""
    for variable in OFFLINE_VARIABLES:
        if os.environ.get(variable, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return f"{variable} is set"
    from huggingface_hub import constants

    return _probe(constants.ENDPOINT)


@functools.lru_cache(maxsize=None)
def _probe(endpoint: str) -> str:
    """Asked once per process: validation and the plan both want the answer."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=PROBE_TIMEOUT_S)  # any HTTP answer means the hub can be reached
    except Exception as e:
        return f"the hub at {endpoint} cannot be reached: {type(e).__name__}"
    return ""


def _parsed(entries):
    """(index, HubEntry) for the well-formed entries, and one problem line for each malformed one."""
    parsed, problems = [], []
    for i, entry in enumerate(entries):
        try:
            parsed.append((i, HubEntry.parse(entry)))
        except ConfigError as e:
            problems.append(f"{KEY}[{i}]: {e}")
    return parsed, problems


def _needs_hub(entry: HubEntry) -> bool:
    """False for data on this machine: a generic builder's local files, or a folder (a name that looks like a path
    is taken for a folder, so that a missing one is reported as such)."""
    if entry.is_local_builder:
        return "://" in entry.subset
    return not is_local_path(entry.name)


def check_entry_shapes(entries) -> list:
    """One line per malformed entry; no imports of heavy libraries, no network."""
    return _parsed(entries)[1]


def check_hub_entries(entries, offline_reason: str = None) -> list:
    """One line per problem: malformed entries, then what ``datasets`` cannot read. ``offline_reason`` ("" = the
    hub can be asked) is decided by ``hub_offline_reason()`` when not given, and only when an entry needs the hub."""
    parsed, problems = _parsed(entries)
    if offline_reason is None and any(_needs_hub(entry) for _, entry in parsed):
        offline_reason = hub_offline_reason()
    for i, entry in parsed:
        if _needs_hub(entry) and offline_reason:
            continue
        try:
            _check_entry(entry)
        except _EntryProblem as problem:
            problems.append(f"{KEY}[{i}] {entry.describe()}: {problem}")
    return problems


def skipped_note(entries) -> str:
    """One line for the plan when hub entries were not checked against the hub ("" when there is nothing to say)."""
    if not any(_needs_hub(entry) for _, entry in _parsed(entries)[0]):
        return ""
    reason = hub_offline_reason()
    return f"hub datasets not checked against the hub ({reason})" if reason else ""


def _check_entry(entry: HubEntry) -> None:
    root = Path(entry.name).expanduser()
    if _needs_hub(entry):
        files = [] if entry.is_local_builder else _hub_files(entry)
    elif entry.is_local_builder:
        files = glob.glob(os.path.expanduser(entry.subset), recursive=True)
        if not files:
            raise _EntryProblem(f"no file matches {entry.subset}")
    elif root.is_dir():
        files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    else:
        raise _EntryProblem("folder does not exist")
    scripts = [] if entry.is_local_builder else [f for f in files if "/" not in f and f.endswith(".py")]
    script_name = f"{Path(entry.name).name}.py"
    if script_name in scripts:  # the file ``datasets`` looks for, and refuses to run since 4.0
        raise _EntryProblem(_script_message(entry, script_name))
    if entry.reads_parquet_export and entry.subset and not any(f.startswith(f"{entry.subset}/") for f in files):
        folders = sorted({f.split("/")[0] for f in files if "/" in f})
        raise _EntryProblem(f"the Parquet export has no folder '{entry.subset}' ({_choices(folders, entry.subset)})")
    try:
        _check_with_datasets(entry)
    except _EntryProblem:
        raise
    except Exception as e:
        raise _EntryProblem(_explain(entry, e, scripts)) from None


def _hub_files(entry: HubEntry) -> list:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = HfApi().dataset_info(entry.name, revision=entry.revision or None, timeout=30)
    except GatedRepoError:
        raise _EntryProblem("is gated: accept its terms on its hub page and log in (hf auth login)") from None
    except RevisionNotFoundError:
        raise _EntryProblem(f"has no revision '{entry.revision}' on the hub") from None
    except RepositoryNotFoundError:
        hint = f"; use {REPLACEMENTS[entry.name]}" if entry.name in REPLACEMENTS else ""
        raise _EntryProblem(f"no such dataset on the hub (or it is private: log in with hf auth login){hint}") \
            from None
    except Exception as e:
        raise _EntryProblem(_explain(entry, e, [])) from None
    return [sibling.rfilename for sibling in info.siblings or []]


def _script_message(entry: HubEntry, script: str) -> str:
    import datasets

    message = f"is a script dataset ({script}), which datasets {datasets.__version__} no longer runs: "
    if entry.name in REPLACEMENTS:
        return message + f"use {REPLACEMENTS[entry.name]} instead"
    if _needs_hub(entry) and _has_parquet_export(entry.name):
        return message + (f"add revision={PARQUET_EXPORT} to read the hub's Parquet export of it (the subset then "
                          f"names a folder of the export; large datasets may be exported only in part)")
    return message + "point the entry at its data as files (Parquet, JSON, CSV) instead"


def _has_parquet_export(name: str) -> bool:
    from huggingface_hub import HfApi

    try:
        return any(ref.ref == PARQUET_EXPORT for ref in HfApi().list_repo_refs(name, repo_type="dataset").converts)
    except Exception:  # only a hint: without an answer, suggest the other fix
        return False


def _check_with_datasets(entry: HubEntry) -> None:
    """Ask ``datasets`` what ``load_dataset`` would find: the subsets, then the splits and columns of ours."""
    import datasets

    from dataset.corpus_readers import load_hub_stream

    arguments = entry.dataset_arguments()
    path, config = arguments.pop("path"), arguments.pop("name", None)
    if config is not None:
        subsets = datasets.get_dataset_config_names(path, revision=entry.revision or None)
        if config not in subsets:
            raise _EntryProblem(f"has no subset '{config}' ({_choices(subsets, config)})")
    info = datasets.get_dataset_config_info(path, config, **arguments)
    splits = list(info.splits or {})
    if entry.split not in splits:
        raise _EntryProblem(f"has no split '{entry.split}' (splits: {', '.join(splits) or 'none'}): add "
                            f"split=NAME to the entry")
    if info.features is not None:
        columns = list(info.features)
    else:  # the builder learns its columns from the data: read the first record, as the dataset stage will
        first = next(iter(load_hub_stream(entry)), None)
        columns = list(first) if first is not None else [entry.text_column]
    if entry.text_column not in columns:
        raise _EntryProblem(f"has no column '{entry.text_column}' (columns: {', '.join(columns)}): give the text "
                            f"column as the third item")


def _explain(entry: HubEntry, error: Exception, scripts: list) -> str:
    """One line for an error of ``datasets``/``huggingface_hub``, with the fix where the cause is known."""
    from datasets.exceptions import DataFilesNotFoundError, DatasetNotFoundError
    from huggingface_hub.errors import OfflineModeIsEnabled

    text = " ".join(str(error).split())[:300] or type(error).__name__
    if scripts and isinstance(error, (DataFilesNotFoundError, FileNotFoundError)):
        return f"has only a loading script ({', '.join(scripts)}) and no data files: point the entry at data files"
    if isinstance(error, DatasetNotFoundError):
        return f"no such dataset ({text})"
    # httpx's TransportError covers refused connections and timeouts (matched by name: huggingface_hub and
    # datasets may use different httpx packages)
    network = any(cls.__name__ == "TransportError" for cls in type(error).__mro__)
    if network or isinstance(error, (ConnectionError, TimeoutError, OfflineModeIsEnabled)):
        return f"cannot reach the hub to check it ({text}): retry, or set HF_HUB_OFFLINE=1 to skip this check"
    return f"datasets cannot read it: {text}"


def _choices(names: list, wanted: str) -> str:
    """``names`` in brief: all of a few, else the close matches (wikimedia/wikipedia has hundreds of subsets)."""
    if len(names) <= 10:
        return f"choices: {', '.join(sorted(names))}" if names else "there are none"
    close = difflib.get_close_matches(wanted, names, n=5, cutoff=0.5)
    if close:
        return f"closest of {len(names)}: {', '.join(close)}"
    return f"{len(names)} choices, e.g. {', '.join(sorted(names)[:5])}"
