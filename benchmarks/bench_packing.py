"""Padding share of the training rows by packing and document length, through the two stand-alone scripts.

    python benchmarks/bench_packing.py --corpus ../shared/data/corpus/wikipedia-en-2015 \
        --vocab ../shared/data/vocab --max_files 1 --max_seq_length 128

The first ``--max_files`` files of the corpus are cut into documents three ways: the articles as they are, one
paragraph (line) per document, and one sentence per document. Each shape goes through ``dataset/shard_data.py``
once and ``dataset/generate_samples.py`` once per ``--packing``; the table reads the training split's padding
share and real (non-[PAD]) tokens per row from the manifest the script writes (the same line it prints).
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKINGS = ("document", "full_sentences")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")  # a sentence end followed by a likely sentence start


def _documents(lines: list, shape: str) -> list:
    """The corpus lines grouped into documents (lists of lines) of ``shape``."""
    if shape == "articles":
        documents, current = [], []
        for line in lines:
            if line.strip():
                current.append(line.strip())
            elif current:
                documents.append(current)
                current = []
        return documents + ([current] if current else [])
    paragraphs = [line.strip() for line in lines if line.strip()]
    if shape == "paragraphs":
        return [[paragraph] for paragraph in paragraphs]
    return [[sentence] for paragraph in paragraphs for sentence in SENTENCE_END.split(paragraph) if sentence]


def _write_corpus(folder: Path, lines: list, shape: str) -> int:
    folder.mkdir(parents=True)
    documents = _documents(lines, shape)
    (folder / "corpus.txt").write_text("".join("\n".join(doc) + "\n\n" for doc in documents), encoding="utf-8")
    return len(documents)


def _script(name: str, *args) -> None:
    subprocess.run([sys.executable, str(REPO / "dataset" / name), *map(str, args), "--no_progress"], check=True,
                   stdout=subprocess.DEVNULL)


def measure(corpus_files: list, vocab: str, max_seq_length: int, work: Path) -> list:
    lines = [line for path in corpus_files for line in path.read_text(encoding="utf-8").splitlines()]
    rows = []
    for shape in ("articles", "paragraphs", "sentences"):
        documents = _write_corpus(work / shape / "corpus", lines, shape)
        text = work / shape / "text"
        _script("shard_data.py", "--output_dir", text, "--num_train_shards", 1, "--num_test_shards", 1,
                "--frac_test", 0.1, "--max_memory", 4, "--dataset", "custom", work / shape / "corpus")
        for packing in PACKINGS:
            out = work / shape / packing
            _script("generate_samples.py", "--dir", text, "-o", out, "--tokenizer_name", vocab, "--max_seq_length",
                    max_seq_length, "--packing", packing, "--max_memory", 4, "--n_processes", 1)
            train = json.loads((out / "manifest.json").read_text())["padding"]["train"]
            rows.append({"shape": shape, "documents": documents, "packing": packing, **train})
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
