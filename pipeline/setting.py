"""What one configuration setting is: its key, default, meaning, allowed values, script flags and identity role.
``pipeline/defaults.py`` declares every setting once as a ``Setting``.
"""
import math
from dataclasses import dataclass
from typing import Any

# How a setting takes part in the identity of the stage output it belongs to (pipeline/run_ids.py):
RESULT = "result"  # changes the output: hashed into the ID
OPERATIONAL = "operational"  # changes only how the work is done (logging, worker count): never hashed
RESULT_IF_CHANGED = "result_if_changed"  # added after IDs existed: hashed only when off its default, so that the
#                                          IDs of runs made before the setting existed stay the same. When such a
#                                          setting's default later changes, ``Setting.legacy_default`` keeps the old
#                                          one as the value left out: the output of the new default gets a new ID.
SEARCH = "search"  # decides which jobs a search runs and what they start from (tasks, grids, seeds, STILT, the
#                    model): never hashed, since each job records its own share of it (its grid values, its model)
HORIZON = "horizon"  # how long the run trains: not hashed, and not part of a checkpoint's signature either, so that
#                      raising it continues the run from its newest checkpoint (pipeline.run_ids.horizon)

SCRIPTS = ("shard", "samples", "pretrain")  # dataset/shard_data.py, dataset/generate_samples.py, run_pretraining.py
# finetuning/run_glue.py: its flags keep the Hugging Face example's spelling and defaults (finetuning/arguments.py
# parses them, with their meaning and range from the table); the finetune stage passes the table's values to it.
FINETUNE_SCRIPT = "finetune"


@dataclass(frozen=True)
class Interval:
    """A numeric range as written (``[0, 1)``, ``(0, inf)``): its bounds (None = unbounded), whether each is in."""

    text: str
    low: Any
    high: Any
    low_closed: bool
    high_closed: bool

    @classmethod
    def parse(cls, text: str) -> "Interval":
        text = text.strip()
        if text[0] not in "[(" or text[-1] not in "])":
            raise ValueError(f"bad interval {text!r}")
        low, high = (None if part.strip().endswith("inf") else float(part) for part in text[1:-1].split(","))
        return cls(text, low, high, text[0] == "[", text[-1] == "]")

    def __contains__(self, value) -> bool:
        """NaN is in no interval, and an infinite value only in one closed at that end (``[0, inf]``): a range
        written ``[0, inf)`` holds every finite number from 0 up, which is what a setting means by it."""
        if math.isnan(value):
            return False
        if math.isinf(value):
            bound, closed = (self.high, self.high_closed) if value > 0 else (self.low, self.low_closed)
            return bound is None and closed
        ok_low = self.low is None or (value >= self.low if self.low_closed else value > self.low)
        ok_high = self.high is None or (value <= self.high if self.high_closed else value < self.high)
        return ok_low and ok_high

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Setting:
    """One configuration key.

    ``flags`` are the script flags that set it, for the scripts named in ``scripts`` (see ``SCRIPTS``). A flag is
    ``"--name"`` (takes a value; a bool setting's ``--name`` is a switch with a ``--no-name`` twin),
    ``"--name=VALUE"`` (sets the constant VALUE, e.g. ``--fp16=fp16``) or ``"--name:value"`` (a bool setting whose
    flag takes 0/1/true/false, e.g. ``--do_lower_case 1``).
    """

    key: str
    default: Any
    help: str
    choices: tuple = ()
    range: str = ""
    flags: tuple = ()
    scripts: tuple = ()
    element_type: type = None  # element type of a list whose default is empty
    identity: str = RESULT
    # RESULT_IF_CHANGED only: the value that stays out of the identity when it is no longer the default (the
    # output every earlier version made). None: the default. With the default alone, a changed default would leave
    # the new output under the old ID, and a rerun would reuse the old data as if it were the new.
    legacy_default: Any = None

    @property
    def unhashed_value(self):
        """The value at which a RESULT_IF_CHANGED setting stays out of the identity (``pipeline.run_ids``)."""
        return self.default if self.legacy_default is None else self.legacy_default

    @property
    def interval(self):
        return Interval.parse(self.range) if self.range else None

    def check_value(self, value) -> str:
        """One line saying why ``value`` is not allowed, or "" when it is."""
        if self.choices and value not in self.choices:
            return f"{self.key} = {value!r} is not one of: {', '.join(map(str, self.choices))}"
        interval = self.interval
        if interval is None:
            return ""
        if isinstance(value, list):  # a grid: each of its values
            outside = [item for item in value if not _is_in(item, interval)]
            return f"{self.key} = {value}: {_out_of(outside[0], interval)}" if outside else ""
        return "" if _is_in(value, interval) else f"{self.key} = {_out_of(value, interval)}"


def _is_in(value, interval: Interval) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value in interval


def _out_of(value, interval: Interval) -> str:
    finite = not isinstance(value, float) or math.isfinite(value)
    return f"{value} is out of range {interval}{'' if finite else ': give a finite number'}"
