"""Resumable DeepSpeed checkpoints under ``OUTPUT_DIR/checkpoints/``, and the training state saved with them.

One folder per checkpoint, ``step00001000/``, and ``latest_step``, a pointer to the newest *complete* one, moved
only after every rank has written: a run killed mid-save resumes from the previous checkpoint. Each folder's
``signature.json`` is written last; it holds the run's signature, checked before DeepSpeed's pickles are opened
(they can run any code: a run resumes only what it wrote), and each file's size, so a damaged checkpoint is set
aside and the run resumes from the newest whole one (layout and healing: docs/interfaces.md, README). Sizes only:
hashing gigabytes at every save costs too much.

``TrainState`` travels as DeepSpeed's ``client_state``. It holds only counters that are the same on every rank, so
rank 0's copy is valid for all ranks, and for another number of ranks (``pretraining.data.loader``); dropout is
re-derived from the seed and the position (``loop.seed_dropout``). Under ZeRO the optimizer state is one file per
process, so such a checkpoint resumes only with as many processes.
"""
import os
import pickle
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from pipeline.disk import MARGIN_BYTES, DiskError, human
from pipeline.errors import ConfigError, DataError, first_line, is_disk_error
from pipeline.manifest import as_stored, changed_files, read_json, write_json_atomic, write_text_atomic

CHECKPOINTS_DIRNAME = "checkpoints"
POINTER_NAME = "latest_step"
# How a refused checkpoint's user gets a folder of their own: main.py's users name runs, the script's name folders.
_NEW_FOLDER = "a folder of its own (another PRETRAIN.ID through main.py; another --output_dir for run_pretraining.py)"
SIGNATURE_NAME = "signature.json"  # {"step", "signature", "files"}: read before DeepSpeed's pickles are opened
DAMAGED_SUFFIX = ".damaged"  # a checkpoint found damaged is kept under this name (no longer a tag: never pruned)
TAG_PATTERN = re.compile(r"^step(\d{8,})$")
GLOBAL_ORDER = "global"  # TrainState.data_order of checkpoints that count the global stream's position


@dataclass
class TrainState:
    """Where training stands; enough, together with the seed and the flags, to continue exactly."""

    step: int = 0  # optimizer steps applied (fp16 overflow skips excluded)
    skipped_steps: int = 0  # optimizer steps skipped for fp16 overflow
    micro_batches: int = 0  # micro-batches consumed per rank (also the dropout-seed counter)
    samples_consumed: int = 0  # samples of the global training stream consumed (all ranks): the data position
    elapsed_s: float = 0.0  # training wall-clock time of every run so far (schedule and budget clock)
    last_val_loss: Optional[float] = None
    scheduler: dict = field(default_factory=dict)  # PretrainLRScheduler.state_dict()
    signature: dict = field(default_factory=dict)  # settings that must not change across a resume
    world_size: int = 1
    data_order: str = GLOBAL_ORDER  # how samples_consumed counts (checkpoints before the global order: per rank)
    horizon: dict = field(default_factory=dict)  # the horizon trained towards (pipeline.run_ids.horizon); it may grow

    def to_client_state(self) -> dict:
        return {"train_state": asdict(self)}

    @classmethod
    def from_client_state(cls, client_state: dict) -> "TrainState":
        saved = client_state["train_state"]
        known = {k: v for k, v in saved.items() if k in cls.__dataclass_fields__}
        if "data_order" not in saved:  # counted per rank: the global position is the sum over the ranks
            known["samples_consumed"] = saved.get("samples_consumed", 0) * saved.get("world_size", 1)
        return cls(**{**known, "data_order": GLOBAL_ORDER})


def checkpoints_dir(output_dir) -> Path:
    return Path(output_dir) / CHECKPOINTS_DIRNAME


def tag_for_step(step: int) -> str:
    return f"step{step:08d}"


def step_of_tag(tag: str) -> Optional[int]:
    match = TAG_PATTERN.match(tag)
    return int(match.group(1)) if match else None


def latest_tag(directory) -> Optional[str]:
    """The newest complete checkpoint's tag, or None when there is none to resume from."""
    pointer = Path(directory) / POINTER_NAME
    try:
        tag = pointer.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return tag if step_of_tag(tag) is not None and (Path(directory) / tag).is_dir() else None


def _tags(directory: Path) -> list:
    """The checkpoint folders' tags, oldest first."""
    return sorted((t for t in os.listdir(directory) if step_of_tag(t) is not None), key=step_of_tag)


def size_records(folder: Path) -> dict:
    """``{file name: {"bytes": size}}`` of a checkpoint's files (all but signature.json)."""
    return {path.relative_to(folder).as_posix(): {"bytes": path.stat().st_size}
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != SIGNATURE_NAME}


def damage(folder: Path) -> str:
    """Why checkpoint ``folder`` cannot be whole (a file missing, or of another size than recorded), or "" when
    its files match its record. A checkpoint of an older version records no sizes and passes."""
    record = read_json(folder / SIGNATURE_NAME)
    files = record.get("files") if isinstance(record, dict) else None
    changed = changed_files(folder, files) if isinstance(files, dict) else []
    if not changed:
        return ""
    name = changed[0]
    try:
        found = f"{(folder / name).stat().st_size:,} bytes"
    except OSError:
        found = "missing"
    more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
    return f"{name}: {found}, {files[name].get('bytes', 0):,} bytes written{more}"


def prune(directory, keep: int) -> list:
    """Delete all but the ``keep`` newest whole checkpoints at or before the pointer, and any partial one newer
    than it; returns the deleted tags. A checkpoint between them that is damaged stays for the resume to set aside,
    so a checkpoint that may be the only valid one is never deleted."""
    directory = Path(directory)
    newest = latest_tag(directory)
    if newest is None:
        return []
    newest_step = step_of_tag(newest)
    tags = _tags(directory)
    complete = [t for t in tags if step_of_tag(t) <= newest_step]
    whole = [t for t in complete if not damage(directory / t)][-keep:]
    if not whole:
        return []
    doomed = [t for t in complete if step_of_tag(t) < step_of_tag(whole[0])]
    doomed += [t for t in tags if step_of_tag(t) > newest_step]
    for tag in doomed:
        shutil.rmtree(directory / tag, ignore_errors=True)
    return doomed


def save_checkpoint(engine, output_dir, state: TrainState, keep: int) -> str:
    """Every rank writes its part of checkpoint ``step<N>``; then rank 0 records the files' sizes in
    ``signature.json``, moves the pointer and prunes."""
    import torch.distributed as dist

    directory = checkpoints_dir(output_dir)
    tag = tag_for_step(state.step)
    if engine.global_rank == 0:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(directory / tag, ignore_errors=True)  # a partial folder of an earlier, killed save
    dist.barrier()
    try:
        engine.save_checkpoint(str(directory), tag=tag, client_state=state.to_client_state(), save_latest=False)
        dist.barrier()  # every rank's files are on disk before their sizes are recorded
        if engine.global_rank == 0:
            write_json_atomic(directory / tag / SIGNATURE_NAME, {"step": state.step, "signature": state.signature,
                                                                 "files": size_records(directory / tag)})
    except BaseException as e:  # a full disk, a kill: leave no partial folder behind (the pointer still holds)
        # torch reports a failed write as a RuntimeError without errno: a disk left with (almost) nothing free
        # while the partial folder still stands tells it was full.
        free = shutil.disk_usage(directory).free
        shutil.rmtree(directory / tag, ignore_errors=True)
        if is_disk_error(e) or (isinstance(e, Exception) and free < MARGIN_BYTES):
            raise DiskError(f"saving checkpoint {directory / tag} failed with {human(free)} left on the disk"
                            f" ({first_line(e)}); free some space and rerun to resume from the previous"
                            f" checkpoint") from e
        raise
    dist.barrier()  # the record is on disk before the pointer says the checkpoint is complete
    if engine.global_rank == 0:
        write_text_atomic(directory / POINTER_NAME, tag + "\n")
        prune(directory, keep)
    dist.barrier()
    return tag


def check_world_size(folder, zero_stage: int, world_size: int) -> None:
    """A ZeRO checkpoint holds one optimizer partition per process, which DeepSpeed cannot re-split: refuse to
    resume it with another number of processes (a ZeRO-0 checkpoint holds the whole state and resumes with any)."""
    writers = len(list(Path(folder).glob("*zero_pp_rank_*_optim_states.pt")))  # DeepSpeed: one file per process
    if zero_stage and writers and writers != world_size:
        raise ConfigError(f"{folder} was written by {writers} processes under ZeRO stage {zero_stage}, which splits the"
                          f" optimizer state per process; resume it with {writers} processes"
                          f" (SYSTEM.PROCESSES_PER_NODE or SYSTEM.NUM_GPUS), or start over in a new output folder")


def resume_candidates(directory: Path) -> tuple:
    """(the tags a resume may load, newest first; why the pointer could not say, or ""). With a pointer: the
    checkpoints at or before it (newer folders are leftovers of a killed save). Without one (deleted, or naming a
    folder that is gone): every folder holding a signature.json, which a save writes last."""
    if not directory.is_dir():
        return [], ""
    tags = _tags(directory)[::-1]
    newest = latest_tag(directory)
    if newest is not None:
        return [t for t in tags if step_of_tag(t) <= step_of_tag(newest)], ""
    complete = [t for t in tags if (directory / t / SIGNATURE_NAME).is_file()]
    pointer = directory / POINTER_NAME
    try:
        why = f"{pointer} names {pointer.read_text(encoding='utf-8').strip()!r}, which is not a checkpoint here"
    except OSError:
        why = f"{pointer} is missing"
    return complete, why if complete else ""


def _set_aside(folder: Path) -> Path:
    """Rename a damaged checkpoint out of the way (kept for a look, never pruned); returns its new path."""
    aside, count = folder.with_name(folder.name + DAMAGED_SUFFIX), 1
    while aside.exists():
        count += 1
        aside = folder.with_name(f"{folder.name}{DAMAGED_SUFFIX}-{count}")
    os.replace(folder, aside)
    return aside


def choose_checkpoint(directory: Path, signature: dict, rank: int, log) -> Optional[str]:
    """The newest checkpoint that is whole (its files' sizes match its record), checked before any pickle is
    opened; each damaged one on the way is set aside (rank 0) with one line, and the pointer is set to the one
    chosen. None when there is nothing to resume."""
    import torch.distributed as dist

    tags, lost_pointer = resume_candidates(directory)
    chosen, damaged = None, []
    for tag in tags:
        check_signature(directory / tag, as_stored(signature))
        problem = damage(directory / tag)
        if not problem:
            chosen = tag
            break
        damaged.append((tag, problem))
    if damaged and dist.is_initialized():
        dist.barrier()  # every rank has judged the folders before rank 0 renames them
    if rank != 0:
        return chosen
    then = f"resuming from {chosen}" if chosen else "no whole checkpoint is left"
    for tag, problem in damaged:
        aside = _set_aside(directory / tag)
        log(f"checkpoint {directory / tag} is damaged ({problem}): kept aside as {aside.name}; {then}")
    if lost_pointer and chosen:
        log(f"{lost_pointer}: resuming from the newest complete checkpoint, {chosen}")
    if chosen and latest_tag(directory) != chosen:
        write_text_atomic(directory / POINTER_NAME, chosen + "\n")
    return chosen


def load_latest_checkpoint(engine, output_dir, signature: dict, log=print) -> Optional[TrainState]:
    """Load the newest whole checkpoint into ``engine`` (weights, optimizer, loss scale) once its signature and
    sizes pass (``choose_checkpoint``); None if there is none."""
    directory = checkpoints_dir(output_dir)
    tag = choose_checkpoint(directory, signature, engine.global_rank, log)
    if tag is None:
        return None
    check_world_size(directory / tag, engine.zero_optimization_stage(), engine.dp_world_size)
    try:
        path, client_state = engine.load_checkpoint(str(directory), tag=tag, load_optimizer_states=True,
                                                    load_lr_scheduler_states=False)
    except (RuntimeError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as e:
        if "out of memory" in str(e):
            raise
        raise DataError(f"checkpoint {directory / tag} could not be loaded ({first_line(e)}); rename it to"
                        f" {tag}{DAMAGED_SUFFIX} to resume from the previous one") from e
    if path is None or not client_state or "train_state" not in client_state:
        raise ConfigError(f"checkpoint {directory / tag} could not be loaded; delete {directory} to start over")
    return TrainState.from_client_state(client_state)


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_signature(folder: Path, current: dict) -> None:
    """A checkpoint may only continue the run that wrote it (the same model, data, recipe and seed), as its
    ``signature.json`` says; without one (an older version wrote it, or something else did) its pickles are not
    loaded. A key the saved signature lacks (the checkpoint predates it) is not compared."""
    record = read_json(folder / SIGNATURE_NAME)
    if not isinstance(record, dict) or not isinstance(record.get("signature"), dict):
        raise ConfigError(f"checkpoint {folder} has no {SIGNATURE_NAME}, so nothing says this run wrote it (an older"
                          f" ExtremeBERT, or another program did), and loading its pickles can run any code they"
                          f" hold; delete {folder.parent} to start over, or give this run {_NEW_FOLDER}")
    saved = record["signature"]
    changed = sorted(k for k in saved if saved[k] != current.get(k))
    if changed:
        details = ", ".join(f"{k}: {_short(saved[k])} -> {_short(current.get(k))}" for k in changed[:4])
        raise ConfigError(f"{folder.parent} holds checkpoints of a different run ({details}); give this run"
                          f" {_NEW_FOLDER}, or delete that checkpoints folder to start over")
