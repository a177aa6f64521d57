"""The one way a command turns a YAML file and ``--opts`` into a checked, resolved config: the defaults, the file,
the overrides, the demo data when the config asks for it, then every check (the foundation's and each stage's).

This module sits above the stages (it imports their checks); ``pipeline.config`` below them knows none of them.
"""
from dataset.stage import validate_config as dataset_checks
from finetuning.stage import validate_config as finetune_checks
from pipeline.config import build_config
from pretraining.stage import validate_config as pretrain_checks
from scripts.result_collection import validate_config as result_checks

STAGE_CHECKS = (dataset_checks, pretrain_checks, finetune_checks, result_checks)


def prepare_demo_inputs(cfg) -> None:
    """Build the quickstart's demo corpus and tasks when DEMO_DATA is on: the corpus must exist before its folder
    can be checked and fingerprinted into the dataset ID. Deterministic, idempotent, seconds (a no-op once built)."""
    if cfg.DEMO_DATA.ENABLED:
        from quickstart.build_demo_data import build_demo_data

        build_demo_data(cfg.DEMO_DATA.OUTPUT_DIR, seed=cfg.SYSTEM.SEED)


def load_config(config_path=None, opts=(), base_dir=None):
    """The checked, resolved, frozen config; raises ConfigError listing every problem."""
    return build_config(config_path, opts, base_dir, prepare_inputs=prepare_demo_inputs, extra_checks=STAGE_CHECKS)
