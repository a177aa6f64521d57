"""One entry of ``DATASET.HUGGINGFACE_DATASETS`` (its forms are in the README), parsed here and only here: the
reader, the config check and the dataset ID all see the same meaning. Entries are lists of strings because yacs
holds lists, not mappings, so options are ``key=value`` items; the first two items stay positional, so the two- and
three-item entries of older configs mean what they meant. With ``revision=refs/convert/parquet`` (the hub's Parquet
export, which also exists for script datasets) the subset names a folder of the export (``data_dir``), not a config.
"""
import re
from dataclasses import dataclass
from pipeline.errors import ConfigError

LOCAL_BUILDERS = ("json", "csv", "parquet", "text")
PARQUET_EXPORT = "refs/convert/parquet"
OPTIONS = ("split", "revision")
_OPTION = re.compile(r"^([A-Za-z_]+)=(.*)$")
FORMS = "[name, subset], [name, subset, text_column] or [name, subset, text_column, split=..., revision=...]"


@dataclass(frozen=True)
class HubEntry:
    name: str
    subset: str = ""
    text_column: str = "text"
    split: str = "train"
    revision: str = ""  # "" = the repo's default branch

    @classmethod
    def parse(cls, entry) -> "HubEntry":
        """The entry as a HubEntry; ConfigError (one line, without the key name) when it is malformed."""
        items = list(entry) if isinstance(entry, (list, tuple)) else None
        if items is None or len(items) < 2:
            raise ConfigError(f"must be {FORMS}, got {entry!r}")
        if not all(isinstance(item, str) for item in items):
            raise ConfigError(f"must hold strings only, got {items!r}: quote numbers, e.g. \"20231101\"")
        if not items[0]:
            raise ConfigError(f"the dataset name (first item) is empty in {items!r}")
        fields = {"name": items[0], "subset": items[1]}
        rest = items[2:]
        if rest and not _OPTION.match(rest[0]):
            fields["text_column"] = rest.pop(0) or "text"
        for item in rest:
            match = _OPTION.match(item)
            if not match:
                raise ConfigError(f"item {item!r} of {items!r} is neither the text column (third item) nor a "
                                  f"key=value option ({', '.join(OPTIONS)})")
            key, value = match.groups()
            if key not in OPTIONS:
                raise ConfigError(f"unknown option {key!r} in {items!r}: the options are {', '.join(OPTIONS)}")
            if key in fields:
                raise ConfigError(f"option {key!r} is given twice in {items!r}")
            if not value:
                raise ConfigError(f"option {key!r} has no value in {items!r}")
            fields[key] = value
        parsed = cls(**fields)
        if parsed.is_local_builder and not parsed.subset:
            raise ConfigError(f"'{parsed.name}' is a generic builder of datasets: give the data file(s) as the subset,"
                              f" e.g. [{parsed.name}, /data/corpus/*.{parsed.name}]")
        if parsed.is_local_builder and parsed.revision:
            raise ConfigError(f"'{parsed.name}' reads local files, which have no revision: drop revision=")
        return parsed

    @property
    def is_local_builder(self) -> bool:
        return self.name in LOCAL_BUILDERS

    @property
    def reads_parquet_export(self) -> bool:
        return self.revision == PARQUET_EXPORT

    def dataset_arguments(self) -> dict:
        """Where the data is, as keyword arguments of ``datasets.load_dataset`` (without split and streaming)."""
        if self.is_local_builder:
            return {"path": self.name, "data_files": self.subset}
        arguments = {"path": self.name}
        if self.subset:
            arguments["data_dir" if self.reads_parquet_export else "name"] = self.subset
        if self.revision:
            arguments["revision"] = self.revision
        return arguments

    def describe(self) -> str:
        words = [self.name, self.subset]
        words += [f"{key}={getattr(self, key)}" for key in OPTIONS if getattr(self, key) != getattr(HubEntry, key)]
        return " ".join(word for word in words if word)
