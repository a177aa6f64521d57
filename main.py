"""ExtremeBERT: pretrain your own BERT on your own corpus and score it on GLUE, from one YAML file.

    python main.py --config configs/quickstart.yaml [--opts KEY VALUE ...] [--dry-run] [--force STAGE]
                   [--no-wait] [--verify] [--quiet | --verbose]

Exit codes: 0 done; 1 a stage failed; 2 bad config; 3 the output disk is full, read-only or not ours to write;
4 another run holds a folder this run needs (--no-wait); 128+N stopped by signal N (130 Ctrl-C, 143 SIGTERM).
"""
import argparse
import signal
import sys
from functools import partial

try:
    from orchestration.runner import format_plan, plan, run_pipeline
    from orchestration.stages import STAGE_NAMES, STAGES, load_config
    from pipeline.errors import ConfigError, ExitCode, run_reporting_errors
    from pipeline.log_setup import add_level_flags, chosen_level, setup_logging
except ModuleNotFoundError as missing:  # the environment is not set up yet
    sys.exit(f"error: missing Python package '{missing.name}': run `bash install.sh`, then use .venv/bin/python")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML file overriding pipeline/defaults.py")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY VALUE",
                        help="override config keys, e.g. --opts PRETRAIN.NUM_STEPS 100 FINETUNE.ENABLED False")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and the plan; run nothing")
    parser.add_argument("--force", action="append", default=[], choices=STAGE_NAMES,
                        help="redo this stage (and every stage after it) even if complete; repeatable")
    parser.add_argument("--no-wait", action="store_true",
                        help="if another run is using this run's folder or its dataset, stop (exit code 4) instead "
                             "of waiting for it")
    parser.add_argument("--verify", action="store_true",
                        help="hash every output a stage recorded instead of comparing sizes; what differs is redone")
    add_level_flags(parser)  # they override SYSTEM.LOG_LEVEL
    return parser.parse_args(argv)


def main(argv=None, stages=STAGES) -> int:
    """``stages`` is for tests: the runner's mechanics with cheap stand-in stages, in a real process."""
    args = parse_args(argv)
    setup_logging(chosen_level(args, "INFO"))  # until the config says which level
    # --quiet/--verbose override SYSTEM.LOG_LEVEL, so that the resolved config each stage reads carries the level
    level_override = ["SYSTEM.LOG_LEVEL", chosen_level(args)] if args.quiet or args.verbose else []
    try:
        cfg = load_config(args.config, args.opts + level_override)
    except ConfigError as e:
        for problem in e.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return ExitCode.CONFIG
    setup_logging(cfg.SYSTEM.LOG_LEVEL)

    def dry_run() -> None:
        print(cfg.dump())
        print(format_plan(plan(cfg, args.force, stages, args.verify)))

    run = dry_run if args.dry_run else partial(run_pipeline, cfg, args.force, stages, wait=not args.no_wait,
                                               deep=args.verify)
    try:
        return run_reporting_errors(run)
    except KeyboardInterrupt:  # Ctrl-C outside a stage (e.g. while waiting for another run): nothing to stop
        print("interrupted", file=sys.stderr)
        return ExitCode.SIGNAL_BASE + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
