"""Padding share of the training rows by packing and document length, through the two stand-alone scripts.

    python benchmarks/bench_packing.py --corpus ../shared/data/corpus/wikipedia-en-2015 \
        --vocab ../shared/data/vocab --max_files 1 --max_seq_length 128

The first ``--max_files`` files of the corpus are cut into documents three ways: the articles as they are, one
paragraph (line) per document, and one sentence per document. Each shape goes through ``dataset/shard_data.py``
once and ``dataset/generate_samples.py`` once per ``--packing`` (the default's run without the flag); the table reads the training split's padding
share and real (non-[PAD]) tokens per row from the manifest the script writes (the same line it prints).
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.document_shapes import SHAPES, split_documents, write_documents  # noqa: E402
from dataset.packing import PACKINGS  # noqa: E402
from pipeline.defaults import SETTINGS_BY_KEY  # noqa: E402

DEFAULT_PACKING = SETTINGS_BY_KEY["DATASET.PACKING"].default


def _write_corpus(folder: Path, lines: list, shape: str) -> int:
    folder.mkdir(parents=True)
    documents = split_documents(lines, shape)
    write_documents(folder / "corpus.txt", documents)
    return len(documents)


def _script(name: str, *args) -> None:
    subprocess.run([sys.executable, str(REPO / "dataset" / name), *map(str, args), "--no_progress"], check=True,
                   stdout=subprocess.DEVNULL)


def measure(corpus_files: list, vocab: str, max_seq_length: int, work: Path) -> list:
    lines = [line for path in corpus_files for line in path.read_text(encoding="utf-8").splitlines()]
    rows = []
    for shape in SHAPES:
        documents = _write_corpus(work / shape / "corpus", lines, shape)
        text = work / shape / "text"
        _script("shard_data.py", "--output_dir", text, "--num_train_shards", 1, "--num_test_shards", 1,
                "--frac_test", 0.1, "--max_memory", 4, "--dataset", "custom", work / shape / "corpus")
        for packing in PACKINGS:
            out = work / shape / packing
            # The default runs without --packing: the table then shows what a user gets who does not choose.
            flag = [] if packing == DEFAULT_PACKING else ["--packing", packing]
            _script("generate_samples.py", "--dir", text, "-o", out, "--tokenizer_name", vocab, "--max_seq_length",
                    max_seq_length, *flag, "--max_memory", 4, "--n_processes", 1)
            manifest = json.loads((out / "manifest.json").read_text())
            label = f"{manifest['packing']} (default)" if not flag else manifest["packing"]
            rows.append({"shape": shape, "documents": documents, "packing": label, **manifest["padding"]["train"]})
    return rows


def table(rows: list) -> str:
    lines = ["| documents | count | packing | rows | real tokens per row | padding share |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['shape']} | {r['documents']:,} | {r['packing']} | {r['rows']:,} | {r['real_tokens_per_row']:.1f} |"
              f" {r['padding_share']:.1%} |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help="folder of .txt files (articles separated by blank lines)")
    parser.add_argument("--vocab", required=True, help="tokenizer folder or hub name (--tokenizer_name)")
    parser.add_argument("--max_files", type=int, default=1, help="corpus files to use (sorted by name)")
    parser.add_argument("--max_seq_length", type=int, default=128)
    args = parser.parse_args(argv)
    files = sorted(Path(args.corpus).glob("*.txt"))[:args.max_files]
    if not files:
        parser.error(f"no .txt files in {args.corpus}")
    with tempfile.TemporaryDirectory() as work:
        print(table(measure(files, args.vocab, args.max_seq_length, Path(work))))


if __name__ == "__main__":
    main()
