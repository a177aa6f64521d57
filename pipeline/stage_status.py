"""What a stage reports about itself before running: what it reads and writes, and whether it is complete."""
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.manifest import manifest_matches


@dataclass
class StageStatus:
    reads: list  # paths or hub names the stage reads
    writes: list  # paths the stage writes
    complete: bool  # outputs exist and match the current settings: the stage can be skipped
    clear_paths: list = field(default_factory=list)  # what ``--force`` deletes before the stage reruns
    detail: str = ""  # one line shown in the plan (e.g. why it is not complete)
    damaged: list = field(default_factory=list)  # outputs that differ from the manifest: deleted before the rerun


def manifest_status(stage_dir, settings: dict, reads, writes, outputs_ok=None, clear_paths=None,
                    damaged=()) -> StageStatus:
    """The usual status: complete when the manifest in ``stage_dir`` matches ``settings`` and the outputs check out.

    ``outputs_ok`` is an optional callable returning True when the outputs the manifest lists are all present;
    ``damaged`` lists outputs found missing or changed since the manifest recorded them (relative to ``stage_dir``
    or absolute): the stage is incomplete, and the runner deletes them so that the stage writes them again.
    """
    stage_dir = Path(stage_dir)
    damaged, to_delete = [stage_dir / path for path in damaged], []
    if not (stage_dir / "manifest.json").exists():
        complete, detail = False, "not run yet"
    elif not manifest_matches(stage_dir, settings):
        complete, detail = False, "settings changed since the last run"
    elif damaged:
        names = ", ".join(str(path.relative_to(stage_dir)) for path in damaged[:3])
        more = f" and {len(damaged) - 3} more" if len(damaged) > 3 else ""
        complete, detail = False, f"outputs missing or changed since they were written: {names}{more}"
        to_delete = damaged
    elif outputs_ok is not None and not outputs_ok():
        complete, detail = False, "outputs missing or incomplete"
    else:
        complete, detail = True, "complete"
    return StageStatus(reads=[str(r) for r in reads], writes=[str(w) for w in writes], complete=complete,
                       clear_paths=list(clear_paths if clear_paths is not None else [stage_dir]), detail=detail,
                       damaged=[str(path) for path in to_delete])
