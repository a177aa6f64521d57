"""Print each task's best configuration (best median over seeds of its primary metric) and the GLUE dev score.

    python scripts/collect_best_val.py --config configs/x.yaml
    python scripts/collect_best_val.py --run-dir runs/runs/<PRETRAIN.ID>
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.cli_config import add_config_arguments, run_cli  # noqa: E402
from scripts.result_collection import collect_best_validation  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    return run_cli(parser, lambda cfg, args: collect_best_validation(cfg), argv)


if __name__ == "__main__":
    sys.exit(main())
