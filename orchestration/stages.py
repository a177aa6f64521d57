"""The pipeline's stages in order, and the config checked by all of them: the one module that imports every stage.
The install stage has no package of its own: it is the check below that every pinned requirement is installed.
"""
import logging
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional

from dataset import stage as dataset_stage
from finetuning import stage as finetune_stage
from pipeline import layout
from pipeline.config import build_config
from pipeline.errors import ExtremeBertError
from pretraining import stage as pretrain_stage
from publishing import stage as publish_stage
from quickstart.build_demo_data import build_demo_data
from scripts import result_collection

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO_ROOT / "requirements.txt"


@dataclass(frozen=True)
class Stage:
    name: str  # as used by --force and in log file names
    section: str  # config section whose ENABLED flag switches the stage
    entry: Callable  # entry function, called with the resolved config in a child process
    status: Optional[Callable]  # cfg -> StageStatus; None: always run (the install check)
    folder: Callable = layout.run_dir  # the folder the stage writes: its lock is held and its disk checked
    estimate: Optional[Callable] = None  # cfg -> bytes the stage may write (None: a small default)
    checks: Optional[Callable] = None  # cfg -> list of problems, run by load_config whether or not it is enabled


class InstallError(ExtremeBertError):
    pass


def read_requirements(path=REQUIREMENTS) -> list:
    """(name, pinned_version or None) for each requirement line."""
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text(encoding="utf-8").splitlines())
    matches = (re.match(r"^([A-Za-z0-9_.\-]+)\s*(?:==\s*([^\s;]+))?", line) for line in lines)
    return [match.groups() for match in matches if match]


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
    """The install stage: raise InstallError naming every missing or mismatched dependency and the command that
    fixes it."""
    problems = missing_requirements()
    if problems:
        raise InstallError(f"environment incomplete ({'; '.join(problems)}): run `bash install.sh` in {REPO_ROOT}"
                           f" (python: {sys.executable})")
    log.info(f"install: all {len(read_requirements())} pinned requirements present ({sys.executable})")


STAGES = (
    Stage("install", "INSTALL", check_install, None),
    Stage("dataset", "DATASET", dataset_stage.prepare_dataset, dataset_stage.dataset_status, layout.dataset_dir,
          dataset_stage.estimate_bytes, dataset_stage.validate_config),
    Stage("pretrain", "PRETRAIN", pretrain_stage.pretrain, pretrain_stage.pretrain_status,
          estimate=pretrain_stage.estimate_bytes, checks=pretrain_stage.validate_config),
    Stage("finetune", "FINETUNE", finetune_stage.finetune, finetune_stage.finetune_status,
          checks=finetune_stage.validate_config),
    Stage("result_collection", "RESULT_COLLECTION", result_collection.collect_test_result,
          result_collection.result_collection_status, checks=result_collection.validate_config),
    Stage("publish", "PUBLISH", publish_stage.publish, publish_stage.publish_status,
          checks=publish_stage.validate_config),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def prepare_demo_inputs(cfg) -> None:
    """Build the quickstart's demo corpus and tasks when DEMO_DATA is on: the corpus must exist before its folder
    can be checked and fingerprinted into the dataset ID. Deterministic, idempotent, seconds (a no-op once built)."""
    if cfg.DEMO_DATA.ENABLED:
        build_demo_data(cfg.DEMO_DATA.OUTPUT_DIR, seed=cfg.SYSTEM.SEED)


def load_config(config_path=None, opts=(), base_dir=None):
    """The one way a command turns a YAML file and ``--opts`` into a checked, resolved, frozen config: the defaults,
    the file, the overrides, the demo data when the config asks for it, then the foundation's checks and every
    stage's. Raises ConfigError listing every problem."""
    checks = [stage.checks for stage in STAGES if stage.checks]
    return build_config(config_path, opts, base_dir, prepare_inputs=prepare_demo_inputs, extra_checks=checks)
