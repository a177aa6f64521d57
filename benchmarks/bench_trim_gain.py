"""How much compute trimming each batch to its longest row would save, before building it (issue 23).

With ``DATASET.PACKING document`` every row is one document's piece, padded to the row length. Trimming a batch to
its longest row saves ``1 - E[longest row] / max_seq_length`` of the positions. This reads the first corpus file,
cuts each paragraph (one document per paragraph, the short-document case) into rows as document packing does, and
samples batches of the given sizes.

    python benchmarks/bench_trim_gain.py --corpus ../shared/data/corpus/wikipedia-en-2015 --vocab ../shared/data/vocab
"""
import argparse
from pathlib import Path

import numpy as np


def row_lengths(paragraph_token_counts, max_seq_length: int) -> np.ndarray:
    """Real tokens of every row (with [CLS] and [SEP]) when each paragraph is a document of its own."""
    body, lengths = max_seq_length - 2, []
    for n in paragraph_token_counts:
        lengths += [max_seq_length] * ((n - 1) // body) + ([(n - 1) % body + 1 + 2] if n else [])
    return np.array(lengths)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help="folder of .txt files, one paragraph per line")
    parser.add_argument("--vocab", required=True, help="a folder holding vocab.txt")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[8, 32, 64])
    args = parser.parse_args(argv)
    from transformers import BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(args.vocab)
    first = sorted(Path(args.corpus).glob("*.txt"))[0]
    paragraphs = [line.strip() for line in first.read_text(encoding="utf-8").splitlines() if line.strip()]
    counts = [len(ids) for ids in tokenizer(paragraphs, add_special_tokens=False)["input_ids"]]
    lengths = row_lengths(counts, args.max_seq_length)
    rng = np.random.default_rng(0)
    print(f"{first.name}: {len(lengths)} rows, {lengths.mean():.1f} real tokens per row, padding share"
          f" {1 - lengths.mean() / args.max_seq_length:.1%}")
    print("| batch | mean longest row | positions trimming saves |\n|---|---|---|")
    for batch in args.batch_sizes:
        longest = np.array([lengths[rng.choice(len(lengths), batch)].max() for _ in range(2000)]).mean()
        print(f"| {batch} | {longest:.1f} | {1 - longest / args.max_seq_length:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
