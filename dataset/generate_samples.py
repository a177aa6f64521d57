"""Tokenize text shards into HDF5 samples (step 2 of 2 when preparing data by hand).

    python dataset/generate_samples.py --dir TMP -o OUT --dup_factor 10 --seed 42 --do_lower_case 1 \
        --masked_lm_prob 0.15 --max_seq_length 128 --tokenizer_name bert-large-uncased \
        --max_predictions_per_seq 20 --n_processes 8

Writes ``OUT/{train,test}_shard_NNNNN.hdf5``, the tokenizer used (``OUT/tokenizer/``) and ``OUT/manifest.json``.
The flags and their defaults are the DATASET/TOKENIZER settings of the config (``--help``): masking is dynamic by
default (token ids only, masks drawn by the pretraining loader); ``--masking static`` writes ``--dup_factor``
differently-masked copies. Rerunning the same command writes only the shards that are missing.
"""
import argparse
import dataclasses
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.errors import ConfigError, run_reporting_errors  # noqa: E402
from pipeline.hardware import num_workers  # noqa: E402
from pipeline.log_setup import add_level_flags, progress_bars, setup_script_logging  # noqa: E402
from pipeline.manifest import write_manifest  # noqa: E402
from pipeline.script_flags import ScriptParser, add_setting_flags, config_from_flags, given_settings  # noqa: E402

from dataset import memory  # noqa: E402
from dataset.sample_jobs import generate_samples, manifest_outputs  # noqa: E402
from dataset.stage import predictions_problem, sample_options, tokenizer_request  # noqa: E402
from dataset.text_shards import list_text_shards  # noqa: E402
from dataset.tokenizer_setup import prepare_tokenizer  # noqa: E402
from dataset.workers import run_in_child  # noqa: E402

SCRIPT = "samples"  # the script's name in the settings table (pipeline/defaults.py): its flags come from there

IO_FLAGS = ("--dir", "--output_dir", "--no_progress", "--model_name")  # flags that are not settings


def build_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, help="folder of text shards written by shard_data.py")
    parser.add_argument("-o", "--output_dir", required=True, help="folder that receives the HDF5 samples")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    parser.add_argument("--model_name", default="", help="the original script's fallback: the tokenizer when"
                                                         " --tokenizer_name is not given")
    add_setting_flags(parser, SCRIPT)
    add_level_flags(parser)
    return parser


def generate(args) -> None:
    cfg = config_from_flags(args, SCRIPT)
    if args.model_name and "TOKENIZER.NAME_OR_PATH" not in given_settings(args):
        cfg.TOKENIZER.NAME_OR_PATH = args.model_name
    if problem := predictions_problem(cfg, ("--max_predictions_per_seq", "--max_seq_length")):
        raise ConfigError(problem)
    memory.check_memory_cap(cfg.SYSTEM.MAX_MEMORY_IN_GB, "--max_memory")
    out_dir = Path(args.output_dir)
    request = dataclasses.replace(tokenizer_request(cfg), key="--tokenizer_name")
    options = sample_options(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = run_in_child(prepare_tokenizer, out_dir / "tokenizer", request, list_text_shards(args.dir, "train"),
                        list_text_shards(args.dir, "test"))
    entries = generate_samples(args.dir, out_dir, out_dir / "tokenizer", options, num_workers(cfg),
                               cfg.SYSTEM.MAX_MEMORY_IN_GB, "--max_memory",
                               progress=not args.no_progress and progress_bars())
    settings = {"tokenizer": asdict(request), "samples": asdict(options), "text_dir": str(Path(args.dir).resolve())}
    write_manifest(out_dir, "generate_samples", settings, **manifest_outputs(info, options, entries))
    print(f"{len(entries)} sample shards, {sum(e['samples'] for e in entries)} samples in {out_dir}")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_script_logging(args)
    return run_reporting_errors(lambda: generate(args))

if __name__ == "__main__":
    sys.exit(main())
