"""The README's promises that a test can hold: its test command is what CI runs, its config reference matches the
defaults, and the install check names what is missing."""
import re
from pathlib import Path

from orchestration.stages import missing_requirements, read_requirements
from pipeline.config_reference import render_block

REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def _readme_commands():
    return re.findall(r"```\n(bash install\.sh && [^\n]+)\n```", README)


def test_readme_starts_with_the_two_commands_quickstart_then_tests():
    quickstart, tests = _readme_commands()[:2]
    assert "main.py --config configs/quickstart.yaml" in quickstart
    assert "-m pytest" in tests


def test_ci_runs_exactly_the_readme_test_command():
    test_command = _readme_commands()[1]
    ci_lines = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci_lines


def test_readme_config_reference_matches_the_defaults():
    assert render_block() in README, "run: python -m pipeline.config_reference --update-readme"


def test_every_pinned_requirement_is_installed_in_this_environment():
    assert missing_requirements() == []


def test_torch_is_pinned_on_a_line_of_its_own_and_every_doc_names_that_pin():
    """install.sh installs the ``torch==`` line first, alone; README and install.sh's GPU warning name the version."""
    torch_pin = dict(read_requirements())["torch"]
    assert torch_pin and f"torch=={torch_pin}\n" in (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8")
    for doc in ("README.md", "install.sh"):
        named = set(re.findall(r"torch==([0-9][^\s`'\")]*)", (REPO_ROOT / doc).read_text(encoding="utf-8")))
        assert named == {torch_pin}, doc


def test_install_check_names_a_missing_package(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy\nno-such-package-xyz==1.0\n# comment\n")
    assert missing_requirements(requirements) == ["no-such-package-xyz is not installed"]
