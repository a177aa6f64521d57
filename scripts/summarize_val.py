"""Print and save a table of every finetune job per task: hyperparameters, seed, dev metrics, wall time, status.

    python scripts/summarize_val.py --config configs/x.yaml
    python scripts/summarize_val.py --run-dir runs/runs/<PRETRAIN.ID>

Writes <run folder>/results/<TASK>.md and <TASK>.csv.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.result_collection import make_parser, run_cli, summarize_validation  # noqa: E402


def main(argv=None) -> int:
    return run_cli(make_parser(__doc__), lambda cfg, args: summarize_validation(cfg), argv)


if __name__ == "__main__":
    sys.exit(main())
