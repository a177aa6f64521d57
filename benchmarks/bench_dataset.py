"""Dataset stage vs. the Hugging Face way, on a real corpus, in one invocation.

    python benchmarks/bench_dataset.py --corpus ../shared/data/corpus/wikipedia-en-2015 \
        --vocab ../shared/data/vocab --max_files 100 --workers 2 --max_memory 1 --output bench_dataset.md

Three measurements, each in its own child process whose whole process tree is sampled for RSS:
- raw: the Rust batch tokenizer alone (``encode_batch`` over all lines, all cores): the speed ceiling.
- baseline: what transformers' ``run_mlm.py`` does: ``datasets.load_dataset("text")``, ``map`` tokenize
  (``num_proc`` = workers), ``map`` group_texts into 128-token blocks.
- ours: ``shard_corpus`` + tokenizer copy + ``generate_samples`` (dynamic masking, 128 tokens), under the cap.
tokens/s use the same numerator for all: the corpus's text tokens as the raw pass counts them. Bytes per
training token = bytes of the final training data on disk / those tokens. On a shared machine wall time depends on
what else runs, so each pipeline runs ``--rounds`` times, interleaved, and the best round counts; CPU seconds
(user + system of the whole process tree) are reported too, being much less sensitive to the load.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BLOCK = 128


def _tokenizer_dir(vocab: str, work: Path) -> Path:
    """A fast-tokenizer folder made from ``vocab`` (a tokenizer folder or a bare vocab.txt folder)."""
    from dataset.tokenizer_setup import TokenizerRequest, prepare_tokenizer

    out = work / "tokenizer"
    prepare_tokenizer(out, TokenizerRequest(name_or_path=vocab))
    return out


def child_raw(spec) -> dict:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(spec["tokenizer"]) / "tokenizer.json"))
    tokens = 0
    for path in spec["files"]:
        with open(path, encoding="utf-8") as f:
            lines = [line for line in f.read().split("\n") if line.strip()]
        for i in range(0, len(lines), 1000):
            tokens += sum(len(e.ids) for e in tokenizer.encode_batch(lines[i:i + 1000], add_special_tokens=False))
    return {"tokens": tokens}


def child_baseline(spec) -> dict:
    import datasets
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer"])
    from benchmarks.run_mlm_blocks import tokenize_and_group

    raw = datasets.load_dataset("text", data_files=spec["files"], split="train", cache_dir=spec["cache"])
    grouped = tokenize_and_group(raw, tokenizer, BLOCK, num_proc=spec["workers"])
    disk = sum(os.path.getsize(f["filename"]) for f in grouped.cache_files)
    return {"blocks": len(grouped), "disk_bytes": disk}


def child_ours(spec) -> dict:
    from dataset.corpus_readers import CorpusSource
    from dataset.sample_file import SampleOptions
    from dataset.sample_jobs import generate_samples
    from dataset.text_shards import ShardingOptions, shard_corpus
    from dataset.tokenizer_setup import TokenizerRequest, prepare_tokenizer
    from dataset.workers import run_in_child

    work = Path(spec["work"])
    shard_corpus([CorpusSource("custom", spec["corpus"])], work / "text",
                 ShardingOptions(spec["train_shards"], spec["test_shards"], spec["frac_test"], 42), progress=False)
    run_in_child(prepare_tokenizer, work / "tok", TokenizerRequest(name_or_path=spec["tokenizer"]))
    options = SampleOptions(max_seq_length=BLOCK, masking=spec["masking"], dup_factor=spec["dup_factor"])
    entries = generate_samples(work / "text", work / "samples", work / "tok", options, spec["workers"],
                               spec["max_memory"], "--max_memory", progress=False)
    disk = sum(p.stat().st_size for p in (work / "samples").glob("*.hdf5"))
    return {"samples": sum(e["samples"] for e in entries), "disk_bytes": disk,
            "text_tokens": sum(e["text_tokens"] for e in entries)}


CHILDREN = {"raw": child_raw, "baseline": child_baseline, "ours": child_ours}


def measure(kind: str, spec: dict, env_extra=None) -> dict:
    """Run one measurement in a child process; wall time, peak RSS of its process tree, and what it reports."""
    from dataset.memory import PeakRssMonitor

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", **(env_extra or {}))
    command = [sys.executable, __file__, "--_child", kind, "--_spec", json.dumps(spec)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    with PeakRssMonitor(pid=process.pid, interval_s=0.05) as monitor:
        out, err = process.communicate()
    seconds = time.time() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # every descendant has been waited for by now
    if process.returncode:
        raise SystemExit(f"{kind} failed:\n{err[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss": monitor.peak, **json.loads(out.strip().splitlines()[-1])}


def best_of(runs: list) -> dict:
    """The fastest round's figures, with the largest peak RSS seen in any round."""
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["cpu_seconds"] = min(r["cpu_seconds"] for r in runs)
    best["peak_rss"] = max(r["peak_rss"] for r in runs)
    return best


def _subset(corpus: Path, max_files: int, repeat: int, work: Path):
    """The first ``max_files`` .txt files (sorted), linked ``repeat`` times into one folder."""
    files = sorted(corpus.rglob("*.txt"))[:max_files]
    folder = work / "corpus"
    folder.mkdir()
    for r in range(repeat):
        for f in files:
            (folder / f"r{r}_{f.name}").symlink_to(f.resolve())
    return folder, sorted(folder.glob("*.txt"))


def run(args) -> str:
    work = Path(tempfile.mkdtemp(prefix="bench_dataset_", dir=args.work_dir))
    try:
        corpus, files = _subset(Path(args.corpus), args.max_files, args.repeat, work)
        mb = sum(f.stat().st_size for f in files) / 1e6
        tokenizer = str(_tokenizer_dir(args.vocab, work))
        print(f"corpus: {len(files)} files, {mb:.1f} MB; workers {args.workers}; cap {args.max_memory} GB", flush=True)
        str_files = [str(f) for f in files]
        ours_spec = {"tokenizer": tokenizer, "corpus": str(corpus), "workers": args.workers,
                     "max_memory": args.max_memory, "train_shards": args.train_shards, "test_shards": 1,
                     "frac_test": 0.0}
        plans = {"raw tokenizer (encode_batch)": ("raw", {"tokenizer": tokenizer, "files": str_files},
                                                  {"TOKENIZERS_PARALLELISM": "true",
                                                   "RAYON_NUM_THREADS": str(args.workers)})}
        if not args.skip_baseline:
            plans["HF datasets map + group_texts"] = ("baseline", {"tokenizer": tokenizer, "files": str_files,
                                                                   "workers": args.workers}, None)
        for masking in ["dynamic"] + (["static"] if args.static else []):
            label = f"ExtremeBERT dataset stage ({masking}{', dup 1' if masking == 'static' else ''})"
            plans[label] = ("ours", {**ours_spec, "masking": masking, "dup_factor": 1}, None)
        runs = {name: [] for name in plans}
        for round_index in range(args.rounds):
            order = list(plans) if round_index % 2 == 0 else list(reversed(plans))
            for name in order:
                kind, spec, env = plans[name]
                scratch = work / "scratch"
                shutil.rmtree(scratch, ignore_errors=True)
                spec = {**spec, "work": str(scratch / "ours"), "cache": str(scratch / "hf_cache")}
                result = measure(kind, spec, env)
                runs[name].append(result)
                print(f"round {round_index + 1}: {name}: {result['seconds']:.1f}s wall, "
                      f"{result['cpu_seconds']:.1f}s CPU", flush=True)
        results = {name: best_of(r) for name, r in runs.items()}
        tokens = results["raw tokenizer (encode_batch)"]["tokens"]
        for name, r in results.items():
            if "text_tokens" in r:
                assert r["text_tokens"] == tokens, "the stage and the raw pass disagree on the token count"
        return report(args, mb, tokens, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(args, mb, tokens, results) -> str:
    baseline = results.get("HF datasets map + group_texts")
    raw = results["raw tokenizer (encode_batch)"]
    lines = [f"Corpus: {args.corpus} ({args.max_files} files x {args.repeat}, {mb:.1f} MB, {tokens / 1e6:.2f} M "
             f"text tokens); {args.workers} workers; memory cap {args.max_memory} GB; {os.cpu_count()} CPU cores "
             f"(shared, so only ratios mean anything).", "",
             f"Best of {args.rounds} interleaved round(s).", "",
             "| pipeline | wall s | tokens/s | vs HF baseline | vs raw tokenizer | CPU s | tokens/CPU-s vs HF | "
             "peak RSS (tree) | bytes/token on disk |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        speed = tokens / r["seconds"]
        vs_base = f"{baseline['seconds'] / r['seconds']:.2f}x" if baseline else "-"
        cpu_vs_base = f"{baseline['cpu_seconds'] / r['cpu_seconds']:.2f}x" if baseline else "-"
        disk = f"{r['disk_bytes'] / tokens:.2f}" if "disk_bytes" in r else "-"
        lines.append(f"| {name} | {r['seconds']:.1f} | {speed / 1e3:.0f}k | {vs_base} | "
                     f"{raw['seconds'] / r['seconds']:.2f}x | {r['cpu_seconds']:.1f} | {cpu_vs_base} | "
                     f"{r['peak_rss'] / 2**20:.0f} MB | {disk} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", help="folder of .txt files (articles separated by blank lines)")
    parser.add_argument("--vocab", help="tokenizer folder or folder with a BERT vocab.txt")
    parser.add_argument("--max_files", type=int, default=1000, help="use the first N .txt files (sorted)")
    parser.add_argument("--repeat", type=int, default=1, help="use the files this many times (a bigger corpus)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max_memory", type=float, default=1.0, help="cap in GB for the dataset stage")
    parser.add_argument("--train_shards", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions; the best round counts")
    parser.add_argument("--static", action="store_true", help="also time static masking (dup_factor 1)")
    parser.add_argument("--skip_baseline", action="store_true")
    parser.add_argument("--work_dir", default=None, help="where temporary data goes (default: system temp)")
    parser.add_argument("--output", help="also append the table to this markdown file")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        print(json.dumps(CHILDREN[args._child](json.loads(args._spec))))
        return
    if not (args.corpus and args.vocab):
        parser.error("--corpus and --vocab are required")
    table = run(args)
    command = "python " + " ".join([Path(__file__).relative_to(REPO).as_posix()] + sys.argv[1:])
    print("\n" + table)
    if args.output:
        with open(args.output, "a", encoding="utf-8") as f:
            f.write(f"\n`{command}`\n\n{table}\n")


if __name__ == "__main__":
    main()
