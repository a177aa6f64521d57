"""The install stage: check that the running environment has every dependency that requirements.txt pins."""
import re
import sys
from importlib import metadata
from pathlib import Path

from pipeline.errors import ExtremeBertError

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO_ROOT / "requirements.txt"


class InstallError(ExtremeBertError):
    pass


def read_requirements(path=REQUIREMENTS) -> list:
    """(name, pinned_version or None) for each requirement line."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.match(r"^([A-Za-z0-9_.\-]+)\s*(?:==\s*([^\s;]+))?", line)
        if match:
            out.append((match.group(1), match.group(2)))
    return out


def missing_requirements(path=REQUIREMENTS) -> list:
    """One line per requirement that is absent or at another version than pinned."""
    problems = []
    for name, pinned in read_requirements(path):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed")
            continue
        # torch's local version tag (+cpu, +cu128) is the build, not a different release.
        if pinned and installed.split("+")[0] != pinned:
            problems.append(f"{name} {installed} is installed, {pinned} is pinned")
    return problems


def check_install(config=None) -> None:
    """Raise InstallError naming every missing or mismatched dependency and the command that fixes it."""
    problems = missing_requirements()
    if problems:
        raise InstallError(f"environment incomplete ({'; '.join(problems)}): run `bash install.sh` in {REPO_ROOT}"
                           f" (python: {sys.executable})")
    print(f"install: all {len(read_requirements())} pinned requirements present ({sys.executable})")
