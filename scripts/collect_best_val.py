"""Print each task's best configuration (best median over seeds of its primary metric) and the GLUE dev score.

    python scripts/collect_best_val.py --config configs/x.yaml
    python scripts/collect_best_val.py --run-dir runs/runs/<PRETRAIN.ID>
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.result_collection import collect_best_validation, make_parser, run_cli  # noqa: E402


def main(argv=None) -> int:
    return run_cli(make_parser(__doc__), lambda cfg, args: collect_best_validation(cfg), argv)


if __name__ == "__main__":
    sys.exit(main())
