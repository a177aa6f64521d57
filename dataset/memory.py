"""The dataset stage's RAM budget: how many worker processes fit under the cap (``SYSTEM.MAX_MEMORY_IN_GB`` /
``--max_memory``: main process plus every worker), and what the process tree uses. Each phase keeps its memory
bounded by construction (streaming with fixed-size buffers), so the budget is a sum of per-process figures, RSS
measured on Linux with margin (RSS counts shared pages once per process: the sum over-estimates, the safe side).
"""
import os
import threading
import time

from pipeline.errors import ConfigError

MB = 1 << 20
GB = 1 << 30

# Main process while sharding: interpreter, numpy, tokenizers/h5py imports, one buffered article, open shard files.
MAIN_PROCESS_BYTES = 160 * MB
# Extra when hub datasets are streamed in the main process (the `datasets`/pyarrow import and its read buffers).
HUB_STREAMING_BYTES = 400 * MB
# The child that loads or trains the tokenizer imports transformers (~230 MB RSS alone).
TOKENIZER_CHILD_BYTES = 420 * MB
# The WordPiece trainer's word counts grow with the training text (measured: +0.9 MB per MB of Wikipedia text, and
# sublinearly, as new words get rarer); a linear estimate with margin is safe.
TRAINER_BYTES_PER_CHAR = 1.5
# One sample worker: interpreter + imports (~60 MB), a tokenizer, one text batch (TEXT_BATCH_CHARS) with its
# encodings (~20 bytes per character), one block of samples and HDF5 chunk cache.
WORKER_BASE_BYTES = 110 * MB
WORKER_BYTES_PER_BATCH_CHAR = 24
# Characters of text a worker tokenizes at once. Batching does not change the output (packing carries the
# unfinished article over), so this is a pure speed/memory trade-off.
TEXT_BATCH_CHARS = 1 << 20


def worker_bytes(tokenizer_file_size: int = 1 * MB) -> int:
    # A loaded Rust tokenizer takes a few times the size of its tokenizer.json.
    return WORKER_BASE_BYTES + WORKER_BYTES_PER_BATCH_CHAR * TEXT_BATCH_CHARS + 4 * tokenizer_file_size


def minimum_bytes(uses_hub: bool = False, tokenizer_file_size: int = 1 * MB) -> int:
    """The smallest cap under which the stage can run at all (one worker)."""
    main = MAIN_PROCESS_BYTES + (HUB_STREAMING_BYTES if uses_hub else 0)  # `datasets` stays imported afterwards
    return main + max(TOKENIZER_CHILD_BYTES, worker_bytes(tokenizer_file_size))


def main_process_bytes() -> int:
    """What the main process holds now (at least the planned figure): measured, since it depends on what was
    imported before (e.g. `datasets` after streaming hub data)."""
    return max(MAIN_PROCESS_BYTES, process_tree_rss())


def check_memory_cap(cap_gb: float, key: str, uses_hub: bool = False, tokenizer_file_size: int = 1 * MB) -> None:
    """Raise ConfigError, naming ``key`` and the minimum, when ``cap_gb`` is too small to run the stage at all."""
    needed = minimum_bytes(uses_hub, tokenizer_file_size)
    if cap_gb * GB < needed:
        raise ConfigError(f"{key} = {cap_gb:g} GB is too small for the dataset stage: it needs at least "
                          f"{needed / GB:.2f} GB (main process + one worker); raise it")


def check_tokenizer_training(cap_gb: float, key: str, train_chars: int) -> None:
    """Raise ConfigError when training a vocabulary on ``train_chars`` characters would not fit under the cap."""
    main = main_process_bytes()
    needed = main + TOKENIZER_CHILD_BYTES + TRAINER_BYTES_PER_CHAR * train_chars
    if cap_gb * GB < needed:
        fits = max(0, int((cap_gb * GB - main - TOKENIZER_CHILD_BYTES) / TRAINER_BYTES_PER_CHAR))
        raise ConfigError(f"training the vocabulary on {train_chars / 1e6:.0f} M characters needs about "
                          f"{needed / GB:.2f} GB, above {key} = {cap_gb:g}: set TOKENIZER.TRAIN_MAX_CHARS to at most "
                          f"{fits} or raise the cap")


def plan_workers(cap_gb: float, requested: int, jobs: int, key: str, tokenizer_file_size: int = 1 * MB) -> int:
    """How many sample workers to start: at most ``requested`` and ``jobs``, and few enough that
    main process + workers x per-worker memory stays under the cap."""
    check_memory_cap(cap_gb, key, tokenizer_file_size=tokenizer_file_size)
    fit = int((cap_gb * GB - main_process_bytes()) // worker_bytes(tokenizer_file_size))
    return max(1, min(requested, jobs, fit))


def process_tree_rss(pid: int = None) -> int:
    """Resident memory of a process and all its descendants, added together (bytes)."""
    import psutil

    def rss(process) -> int:
        try:
            return process.memory_info().rss
        except psutil.NoSuchProcess:  # a worker that exited between the listing and the read
            return 0

    try:
        root = psutil.Process(pid or os.getpid())
        return sum(map(rss, [root] + root.children(recursive=True)))
    except psutil.NoSuchProcess:
        return 0


class PeakRssMonitor:
    """Around the work to measure (a context manager), samples the total RSS of the process tree of ``pid``
    (default: this process) in a background thread; ``peak`` is the largest sum seen."""

    def __init__(self, pid: int = None, interval_s: float = 0.05):
        self.pid = pid
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, process_tree_rss(self.pid))
            time.sleep(self.interval_s)

    def __enter__(self):
        self.peak = process_tree_rss(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, process_tree_rss(self.pid))
        return False
