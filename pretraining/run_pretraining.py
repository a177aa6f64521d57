"""Pretrain a BERT on HDF5 samples: `deepspeed [--num_gpus N] pretraining/run_pretraining.py ...` or plain
`python pretraining/run_pretraining.py ...`. Rerunning the same command resumes from the newest checkpoint.
See `--help` for the flags (a bad flag or value: one line per problem, exit 2) and pretraining/trainer.py for what
happens."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.errors import ConfigError, ExtremeBertError  # noqa: E402
from pretraining.arguments import parse_arguments  # noqa: E402


def main(argv=None) -> int:
    try:
        cfg, paths = parse_arguments(argv)
    except ConfigError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr, flush=True)
        return 2
    from pretraining.trainer import INTERRUPT_EXIT_CODE, Interrupted, train

    try:
        train(cfg, paths)
    except ExtremeBertError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    except Interrupted as e:
        print(str(e), file=sys.stderr, flush=True)
        return INTERRUPT_EXIT_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main())
