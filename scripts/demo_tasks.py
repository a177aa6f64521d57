"""Recognise the quickstart's demo tasks: stand-ins written in the GLUE layout that are not GLUE.

The quickstart's data builder writes ``demo_tasks.json`` into its GLUE_DIR: ``{"tasks": {"CoLA": {"name": ...,
"rule": ...}, ...}, "note": ...}``. Results on those folders must never be reported as GLUE numbers.
"""
from pathlib import Path

from pipeline.errors import DataError
from pipeline.manifest import read_json

DEMO_TASKS_FILE = "demo_tasks.json"


def demo_tasks_path(glue_dir) -> Path:
    return Path(glue_dir) / DEMO_TASKS_FILE


def demo_tasks_problem(glue_dir) -> str:
    """Why ``demo_tasks.json`` in ``glue_dir`` is malformed ("" when it is absent or well formed)."""
    if not glue_dir or not demo_tasks_path(glue_dir).exists():
        return ""
    path = demo_tasks_path(glue_dir)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
        return f"{path}: expected a JSON object with a \"tasks\" mapping (task -> {{name, rule}})"
    for task, entry in data["tasks"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(
                entry.get("rule"), str):
            return f"{path}: task {task!r} needs a \"name\" and a \"rule\" string"
    return ""


def load_demo_tasks(glue_dir):
    """{"tasks": {task: {"name", "rule"}}, "note": str} when ``glue_dir`` holds demo tasks, else None."""
    if not glue_dir or not demo_tasks_path(glue_dir).exists():
        return None
    problem = demo_tasks_problem(glue_dir)
    if problem:
        raise DataError(problem)
    data = read_json(demo_tasks_path(glue_dir))
    return {"tasks": data["tasks"], "note": str(data.get("note", ""))}
