"""Split raw corpora into train/test text shards (step 1 of 2 when preparing data by hand).

    python dataset/shard_data.py --output_dir TMP --num_train_shards 256 --num_test_shards 128 --frac_test 0.1 \
        --max_memory 16 --dataset wikimedia/wikipedia 20231101.en --dataset custom /data/corpus

``--dataset NAME SUBSET [TEXT_COLUMN]`` streams the train split of a Hugging Face dataset; ``--dataset custom DIR``
reads every .txt under DIR (articles separated by blank lines). Rerunning with the same arguments does nothing.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.errors import ExtremeBertError, run_reporting_errors  # noqa: E402
from pipeline.log_setup import add_level_flags, progress_bars, setup_script_logging  # noqa: E402
from pipeline.script_flags import ScriptParser, add_setting_flags, config_from_flags  # noqa: E402

from dataset import memory  # noqa: E402
from dataset.corpus_readers import CorpusSource  # noqa: E402
from dataset.stage import sharding_options  # noqa: E402
from dataset.text_shards import shard_corpus  # noqa: E402

SCRIPT = "shard"  # the script's name in the settings table (pipeline/defaults.py): its flags come from there


def parse_sources(specs) -> list:
    sources = []
    for spec in specs:
        if len(spec) not in (2, 3):
            raise ExtremeBertError(f"--dataset takes NAME SUBSET [TEXT_COLUMN] or custom DIR, got {' '.join(spec)}")
        if spec[0] == "custom":
            sources.append(CorpusSource("custom", str(Path(spec[1]).resolve())))
        else:
            sources.append(CorpusSource("hub", spec[0], spec[1], spec[2] if len(spec) == 3 else "text"))
    return sources


IO_FLAGS = ("--output_dir", "--dataset", "--no_progress")  # flags that are not settings


def build_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="folder that receives the text shards")
    parser.add_argument("--dataset", nargs="+", action="append", required=True, metavar="ARG",
                        help="NAME SUBSET [TEXT_COLUMN] for a hub dataset, or custom DIR for a folder of .txt")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    add_setting_flags(parser, SCRIPT)
    add_level_flags(parser)
    return parser


def shard(args) -> None:
    cfg = config_from_flags(args, SCRIPT)
    sources = parse_sources(args.dataset)
    memory.check_memory_cap(cfg.SYSTEM.MAX_MEMORY_IN_GB, "--max_memory", uses_hub=any(s.kind == "hub" for s in sources))
    record = shard_corpus(sources, args.output_dir, sharding_options(cfg),
                          progress=not args.no_progress and progress_bars())
    print(f"{len(record['shards'])} text shards, {record['articles']} articles, {record['chars']} characters "
          f"({record['test_chars'] / record['chars']:.1%} held out) in {args.output_dir}")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_script_logging(args)
    return run_reporting_errors(lambda: shard(args))

if __name__ == "__main__":
    sys.exit(main())
