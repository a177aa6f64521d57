"""Stage manifests, the small JSON record a stage writes when (and only when) it has completed (what "complete" means:
docs/interfaces.md), and the atomic writes that keep an interrupted run from leaving a file a later run would trust.
"""
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_NAME = "manifest.json"


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename: readers see the old file
    or the whole new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def write_json_atomic(path, payload) -> None:
    """Write ``payload`` as JSON to ``path`` atomically (see write_text_atomic)."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path):
    """The parsed JSON at ``path``, or None when it is missing or unreadable (a torn write counts as missing)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def as_stored(value):
    """``value`` as it reads back from JSON (tuples become lists, other objects strings): the form to compare in."""
    return json.loads(json.dumps(value, default=str))


def write_manifest(stage_dir, stage: str, settings: dict, **outputs) -> dict:
    """Record that ``stage`` completed in ``stage_dir`` with ``settings``; ``outputs`` are stage-specific facts."""
    manifest = {"stage": stage, "settings": settings, "completed_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **outputs}
    write_json_atomic(Path(stage_dir) / MANIFEST_NAME, manifest)
    return manifest


def read_manifest(stage_dir):
    return read_json(Path(stage_dir) / MANIFEST_NAME)


def manifest_matches(stage_dir, settings: dict) -> bool:
    """True when ``stage_dir`` holds a manifest whose settings equal ``settings`` (compared as JSON)."""
    manifest = read_manifest(stage_dir)
    return manifest is not None and as_stored(manifest.get("settings")) == as_stored(settings)


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_records(root, files, known_sha256=None) -> dict:
    """``{path relative to root: {"bytes": size, "sha256": hash}}`` for ``files``; ``known_sha256`` (by relative
    path) holds hashes computed already, so that large outputs are not read twice."""
    known = known_sha256 or {}
    paths = {path.relative_to(root).as_posix(): path for path in sorted(map(Path, files))}
    return {name: {"bytes": path.stat().st_size, "sha256": known.get(name) or file_sha256(path)}
            for name, path in paths.items()}


def changed_files(root, records: dict, deep: bool = False) -> list:
    """The recorded files under ``root`` that are missing or have another size than recorded, or with ``deep``
    another sha256. A record without "bytes" or "sha256" skips that comparison."""

    def differs(path: Path, record: dict) -> bool:
        try:
            size = path.stat().st_size
        except OSError:
            return True
        if record.get("bytes", size) != size:
            return True
        return bool(deep and record.get("sha256")) and record["sha256"] != file_sha256(path)

    return [name for name, record in sorted(records.items()) if differs(Path(root) / name, record)]


@dataclass
class StageStatus:
    """What a stage reports about itself before running: what it reads and writes, and whether it is complete."""

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
