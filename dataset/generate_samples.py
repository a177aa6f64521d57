"""Tokenize text shards into HDF5 samples (step 2 of 2 when preparing data by hand).

    python dataset/generate_samples.py --dir TMP -o OUT --dup_factor 10 --seed 42 --do_lower_case 1 \
        --masked_lm_prob 0.15 --max_seq_length 128 --tokenizer_name bert-large-uncased \
        --max_predictions_per_seq 20 --n_processes 8

Writes ``OUT/{train,test}_shard_NNNNN.hdf5``, the tokenizer used (``OUT/tokenizer/``) and ``OUT/manifest.json``.
``--masking dynamic`` stores token ids only (masks are drawn by the pretraining loader; ``--dup_factor`` is then
ignored). Rerunning the same command writes only the shards that are missing.
"""
import argparse
import os
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.errors import ExtremeBertError  # noqa: E402
from pipeline.manifest import write_manifest  # noqa: E402

from dataset import memory  # noqa: E402
from dataset.sample_generation import generate_samples, manifest_outputs  # noqa: E402
from dataset.sample_writer import SampleOptions  # noqa: E402
from dataset.sharding import list_text_shards  # noqa: E402
from dataset.tokenizer_setup import TokenizerRequest, prepare_tokenizer  # noqa: E402
from dataset.workers import run_in_child  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, help="folder of text shards written by shard_data.py")
    parser.add_argument("-o", "--output_dir", required=True, help="folder that receives the HDF5 samples")
    parser.add_argument("--tokenizer_name", default=None, help="hub name or local tokenizer folder")
    parser.add_argument("--model_name", default=None, help="accepted for compatibility: the tokenizer when "
                                                           "--tokenizer_name is not given")
    parser.add_argument("--train_tokenizer", action="store_true", help="train a WordPiece vocabulary on --dir")
    parser.add_argument("--vocab_size", type=int, default=30522, help="vocabulary size with --train_tokenizer")
    parser.add_argument("--masking", choices=("static", "dynamic"), default="static")
    parser.add_argument("--dup_factor", type=int, default=10, help="differently-masked copies (static masking)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--do_lower_case", type=int, choices=(0, 1), default=1)
    parser.add_argument("--masked_lm_prob", type=float, default=0.15)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--max_predictions_per_seq", type=int, default=20)
    parser.add_argument("--n_processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max_memory", type=float, default=16.0, help="RAM cap in GB for this step")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def _check(args) -> None:
    if not (args.tokenizer_name or args.model_name or args.train_tokenizer):
        raise ExtremeBertError("give --tokenizer_name (hub name or local folder) or --train_tokenizer")
    if not 0 < args.masked_lm_prob < 1:
        raise ExtremeBertError(f"--masked_lm_prob must be in (0, 1), got {args.masked_lm_prob}")
    if not 1 <= args.max_predictions_per_seq <= args.max_seq_length - 2:
        raise ExtremeBertError(f"--max_predictions_per_seq must be in [1, max_seq_length - 2 = "
                               f"{args.max_seq_length - 2}], got {args.max_predictions_per_seq}")
    if args.dup_factor < 1 or args.n_processes < 1 or not 8 <= args.max_seq_length <= 65535:
        raise ExtremeBertError("--dup_factor and --n_processes must be >= 1, --max_seq_length in [8, 65535]")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check(args)
        memory.check_memory_cap(args.max_memory, "--max_memory")
        out_dir = Path(args.output_dir)
        request = TokenizerRequest(name_or_path=args.tokenizer_name or args.model_name or "", key="--tokenizer_name",
                                   train=args.train_tokenizer, vocab_size=args.vocab_size, train_max_chars=0,
                                   do_lower_case=bool(args.do_lower_case))
        options = SampleOptions(max_seq_length=args.max_seq_length, masking=args.masking,
                                masked_lm_prob=args.masked_lm_prob, max_predictions_per_seq=args.max_predictions_per_seq,
                                dup_factor=args.dup_factor, seed=args.seed)
        out_dir.mkdir(parents=True, exist_ok=True)
        info = run_in_child(prepare_tokenizer, out_dir / "tokenizer", request, list_text_shards(args.dir, "train"))
        entries = generate_samples(args.dir, out_dir, out_dir / "tokenizer", options, args.n_processes,
                                   args.max_memory, "--max_memory", progress=not args.no_progress)
    except ExtremeBertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    settings = {"tokenizer": asdict(request), "samples": asdict(options), "text_dir": str(Path(args.dir).resolve())}
    write_manifest(out_dir, "generate_samples", settings, **manifest_outputs(info, options, entries))
    print(f"{len(entries)} sample shards, {sum(e['samples'] for e in entries)} samples in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
