"""Resumable DeepSpeed checkpoints under ``OUTPUT_DIR/checkpoints/``, and the training state saved with them.

Layout: one folder per checkpoint, ``step00001000/`` (DeepSpeed's files: weights, optimizer, ZeRO partitions),
and ``latest_step``, a one-line pointer to the newest *complete* checkpoint. The pointer is our own and is
replaced atomically after every rank has finished writing, so a run killed in the middle of a save resumes from
the previous checkpoint; folders the pointer does not cover are leftovers and are deleted.

``TrainState`` travels inside the checkpoint as DeepSpeed's ``client_state``. It records only counters that are
the same on every rank (data position as samples consumed per rank, applied/skipped steps, elapsed time), so the
copy rank 0 writes is valid for all ranks; dropout randomness is re-derived from the seed and the position rather
than saved (see ``trainer.seed_dropout``).
"""
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from pipeline.errors import ConfigError

CHECKPOINTS_DIRNAME = "checkpoints"
POINTER_NAME = "latest_step"
TAG_PATTERN = re.compile(r"^step(\d{8,})$")


@dataclass
class TrainState:
    """Where training stands; enough, together with the seed and the flags, to continue exactly."""

    step: int = 0  # optimizer steps applied (fp16 overflow skips excluded)
    skipped_steps: int = 0  # optimizer steps skipped for fp16 overflow
    micro_batches: int = 0  # micro-batches consumed per rank (also the dropout-seed counter)
    samples_consumed: int = 0  # samples this rank read from its training stream: the data position
    elapsed_s: float = 0.0  # training wall-clock time of every run so far (schedule and budget clock)
    last_val_loss: Optional[float] = None
    scheduler: dict = field(default_factory=dict)  # PretrainLRScheduler.state_dict()
    signature: dict = field(default_factory=dict)  # settings that must not change across a resume
    world_size: int = 1
    horizon: dict = field(default_factory=dict)  # the horizon trained towards (pipeline.run_ids.horizon); it may grow

    def to_client_state(self) -> dict:
        return {"train_state": asdict(self)}

    @classmethod
    def from_client_state(cls, client_state: dict) -> "TrainState":
        known = {k: v for k, v in client_state["train_state"].items() if k in cls.__dataclass_fields__}
        return cls(**known)


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


def _write_pointer(directory: Path, tag: str) -> None:
    tmp = directory / f".{POINTER_NAME}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(tag + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / POINTER_NAME)


def prune(directory, keep: int) -> list:
    """Delete all but the ``keep`` newest complete checkpoints and any partial one newer than the pointer;
    returns the deleted tags."""
    directory = Path(directory)
    newest = latest_tag(directory)
    if newest is None:
        return []
    newest_step = step_of_tag(newest)
    tags = sorted((t for t in os.listdir(directory) if step_of_tag(t) is not None), key=step_of_tag)
    complete = [t for t in tags if step_of_tag(t) <= newest_step]
    doomed = complete[:-keep] + [t for t in tags if step_of_tag(t) > newest_step]
    for tag in doomed:
        shutil.rmtree(directory / tag, ignore_errors=True)
    return doomed


def save_checkpoint(engine, output_dir, state: TrainState, keep: int) -> str:
    """Every rank writes its part of checkpoint ``step<N>``; then rank 0 moves the pointer and prunes."""
    import torch.distributed as dist

    directory = checkpoints_dir(output_dir)
    tag = tag_for_step(state.step)
    if engine.global_rank == 0:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(directory / tag, ignore_errors=True)  # a partial folder of an earlier, killed save
    dist.barrier()
    engine.save_checkpoint(str(directory), tag=tag, client_state=state.to_client_state(), save_latest=False)
    dist.barrier()  # every rank's files are on disk before the pointer says the checkpoint is complete
    if engine.global_rank == 0:
        _write_pointer(directory, tag)
        prune(directory, keep)
    dist.barrier()
    return tag


def load_latest_checkpoint(engine, output_dir) -> Optional[TrainState]:
    """Load the newest complete checkpoint into ``engine`` (weights, optimizer, loss scale); None if none."""
    directory = checkpoints_dir(output_dir)
    tag = latest_tag(directory)
    if tag is None:
        return None
    path, client_state = engine.load_checkpoint(str(directory), tag=tag, load_optimizer_states=True,
                                                load_lr_scheduler_states=False)
    if path is None or not client_state or "train_state" not in client_state:
        raise ConfigError(f"checkpoint {directory / tag} could not be loaded; delete {directory} to start over")
    return TrainState.from_client_state(client_state)


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_signature(saved: dict, current: dict, output_dir) -> None:
    """A checkpoint may only continue the run that wrote it: the same model, data, recipe and seed. A key the saved
    signature lacks (the checkpoint predates it) is not compared."""
    changed = sorted(k for k in set(saved) | set(current) if k in saved and saved.get(k) != current.get(k))
    if changed:
        details = ", ".join(f"{k}: {_short(saved.get(k))} -> {_short(current.get(k))}" for k in changed[:4])
        raise ConfigError(f"{checkpoints_dir(output_dir)} holds checkpoints of a different run ({details}); use a"
                          f" new --output_dir, or delete the checkpoints folder to start over")
