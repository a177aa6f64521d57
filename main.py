"""ExtremeBERT: pretrain your own BERT on your own corpus and score it on GLUE, from one YAML file.

    python main.py --config configs/quickstart.yaml [--opts KEY VALUE ...] [--dry-run] [--force STAGE]
"""
import argparse
import sys

try:
    from pipeline.load import load_config
    from pipeline.errors import ConfigError, ExtremeBertError
    from pipeline.runner import STAGE_NAMES, format_plan, plan, run_pipeline
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
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.opts)
    except ConfigError as e:
        for problem in e.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 2
    try:
        if args.dry_run:
            print(cfg.dump())
            print(format_plan(plan(cfg, args.force)))
            return 0
        return run_pipeline(cfg, args.force)
    except ExtremeBertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
