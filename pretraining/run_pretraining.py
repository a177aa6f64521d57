"""Pretrain a BERT on HDF5 samples: `deepspeed [--num_gpus N] pretraining/run_pretraining.py ...` or plain
`python pretraining/run_pretraining.py ...`. Rerunning the same command resumes from the newest checkpoint.
See `--help` for the flags (a bad flag or value: one line per problem, exit 2) and pretraining/trainer.py for what
happens. How the rows were packed and by which unit they are masked (`generate_samples.py --packing`,
`--masking_unit`) belong to the samples: each file records them (docs/interfaces.md) and the loader follows the file,
with dynamic masking too, so there is no flag here that could contradict the data."""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.errors import run_reporting_errors  # noqa: E402
from pipeline.layout import FINAL_MODEL  # noqa: E402
from pretraining.arguments import parse_arguments  # noqa: E402

log = logging.getLogger(__name__)


def main(argv=None) -> int:
    """0 when done; 2 for a bad flag or setting (with --push_to_hub: no token, or HF_HUB_OFFLINE set), 3 for a full
    or read-only disk, 1 for any other error (an upload that failed: rerun to finish it), one line each; 143 when
    SIGTERM/SIGINT stopped the run after a checkpoint."""

    def run() -> int:
        cfg, paths = parse_arguments(argv)  # before importing torch: a bad flag fails at once
        from pretraining.trainer import INTERRUPT_EXIT_CODE, Interrupted, train

        try:
            manifest = train(cfg, paths)
        except Interrupted as e:
            print(str(e), file=sys.stderr, flush=True)
            return INTERRUPT_EXIT_CODE
        if paths.hub_repo and manifest is not None:  # rank 0, once the manifest records the model and its card
            from pipeline.hub_publish import publish_folder

            log.info(publish_folder(paths.output_dir / FINAL_MODEL, paths.hub_repo, cfg.PUBLISH.PRIVATE,
                                    "ExtremeBERT: pretrained model"))
        return 0

    return run_reporting_errors(run)


if __name__ == "__main__":
    sys.exit(main())
