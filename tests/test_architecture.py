"""The layers of docs/architecture.md hold: the foundation imports no stage, a stage imports only the foundation and
the stages before it, and only the orchestration imports every stage."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGE_ORDER = ("quickstart", "dataset", "pretraining", "finetuning", "scripts")  # data flows left to right
ORCHESTRATION = {"pipeline/load.py", "pipeline/runner.py", "pipeline/run_stage.py", "pipeline/install_check.py",
                 "main.py"}


def _imported_packages(path: Path) -> set:
    packages = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            packages |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            packages.add(node.module.split(".")[0])
    return packages


def _modules(folder: str):
    return sorted((REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("pipeline"), ids=lambda p: p.name)
def test_the_foundation_imports_no_stage(path):
    if str(path.relative_to(REPO)) in ORCHESTRATION:
        pytest.skip("orchestration: imports the stages on purpose")
    assert not _imported_packages(path) & set(STAGE_ORDER)


@pytest.mark.parametrize("stage", STAGE_ORDER)
def test_a_stage_imports_only_the_foundation_and_earlier_stages(stage):
    later = set(STAGE_ORDER[STAGE_ORDER.index(stage) + 1:]) | {"main"}
    for path in _modules(stage):
        assert not _imported_packages(path) & later, f"{path.relative_to(REPO)} imports a later stage"


def test_no_module_imports_by_a_string():
    """Plain imports only, so that a reader (and a tool) can follow every call. The one exception is the child
    process of a stage, which is handed its entry function's name on its command line by the runner."""
    for folder in ("pipeline", *STAGE_ORDER):
        for path in _modules(folder):
            text = path.read_text(encoding="utf-8")
            if path.relative_to(REPO) == Path("pipeline/run_stage.py"):
                continue
            assert "import_module(" not in text and "resolve_name(" not in text, path.relative_to(REPO)
