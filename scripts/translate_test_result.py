"""Build glue_submission.zip for gluebenchmark.com from the best seed of each task's best configuration.

    python scripts/translate_test_result.py --config configs/x.yaml [--allow-partial] [--output FILE.zip]
    python scripts/translate_test_result.py --run-dir runs/runs/<PRETRAIN.ID>

Row counts are checked against the test files in FINETUNE.GLUE_DIR; a missing task is refused unless
--allow-partial (or RESULT_COLLECTION.ALLOW_PARTIAL) is given.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.errors import DataError  # noqa: E402
from scripts.result_collection import make_parser, run_cli, translate_test_result  # noqa: E402


def _translate(cfg, args) -> None:
    record = translate_test_result(cfg, allow_partial=True if args.allow_partial else None, output=args.output)
    if not record["written"]:
        raise DataError(record["reason"])


def main(argv=None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--allow-partial", action="store_true", help="write the zip even when tasks are missing")
    parser.add_argument("--output", help="zip to write (default: <run folder>/glue_submission.zip)")
    return run_cli(parser, _translate, argv)


if __name__ == "__main__":
    sys.exit(main())
