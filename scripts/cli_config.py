"""The config the result-collection scripts work on: from ``--config`` (+ ``--opts``) like main.py, or from a run
folder's own ``config.yaml`` (``--run-dir``), which also works after the folder was moved.

A ``--config`` gets the foundation's checks and result collection's own; the other stages' checks concern inputs a
finished run no longer reads, and only the layer above the stages (``orchestration.stages``) may import them all."""
import argparse
from pathlib import Path

from pipeline.config import build_config, load_resolved_config, merge_mapping, opts_to_mapping
from pipeline.defaults import SETTINGS
from pipeline.errors import ConfigError, run_reporting_errors
from pipeline.log_setup import add_level_flags, setup_script_logging
from pipeline.validation import value_problems
from scripts.result_collection import validate_config


def make_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the config arguments every result-collection script takes; ``description`` is its docstring."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    add_level_flags(parser)
    return parser


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="the YAML file the pipeline ran with")
    source.add_argument("--run-dir", "--run_dir", dest="run_dir",
                        help="a run folder (OUTPUT_ROOT/runs/<PRETRAIN.ID>) holding config.yaml")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="override config keys, e.g. --opts RESULT_COLLECTION.WRITE_PLOTS False")


def config_from_args(args):
    """The resolved config named by ``--config`` or ``--run-dir``, with ``--opts`` applied."""
    if args.config:
        return build_config(args.config, args.opts, extra_checks=[validate_config])
    run_dir = Path(args.run_dir).resolve()
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(f"--run-dir {run_dir}: no config.yaml there (the pipeline writes one into every run folder)")
    if run_dir.parent.name != "runs":
        raise ConfigError(f"--run-dir {run_dir}: a run folder lives at OUTPUT_ROOT/runs/<PRETRAIN.ID>; use --config"
                          " for a folder elsewhere")
    cfg = load_resolved_config(config_path)
    cfg.defrost()
    # The folder is where the user says it is, even if it was moved since the run.
    cfg.SYSTEM.OUTPUT_ROOT = str(run_dir.parent.parent)
    cfg.PRETRAIN.ID = run_dir.name
    problems: list = []
    merge_mapping(cfg, opts_to_mapping(list(args.opts), problems), problems)  # the same checked merge as main.py
    problems += value_problems(cfg, SETTINGS)
    if problems:
        raise ConfigError(problems)
    cfg.freeze()
    return cfg


def run_cli(parser: argparse.ArgumentParser, action, argv=None) -> int:
    """Parse ``argv``, build the config and call ``action(cfg, args)``. A user's error is reported as main.py reports
    it: one ``error:`` line per problem and the same exit code (2 for the config, 3 for the disk, 1 otherwise)."""
    args = parser.parse_args(argv)
    setup_script_logging(args)

    def run() -> None:
        action(config_from_args(args), args)

    return run_reporting_errors(run)
