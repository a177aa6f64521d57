"""Build the quickstart's offline data: a docstring corpus and demo tasks in the GLUE layout.

    OUTPUT_DIR/
      corpus/corpus_NNNNN.txt   customized-dataset format: one paragraph per line, a blank line after each article
      glue/CoLA/{train,dev,test}.tsv, glue/MRPC/{train,dev,test}.tsv, glue/demo_tasks.json
      own/word_order/{train,dev,test}.csv, own/mentions/{train,dev,test}.conll   tasks of one's own (demo_tasks)
      manifest.json             written last: the settings and every output file with its size

The build is deterministic (the same installed packages give byte-identical files) and idempotent: nothing is done
when the manifest matches and its files are there; otherwise everything is rebuilt in ``OUTPUT_DIR/.staging`` and
moved into place, the manifest last. Articles that feed the dev/test splits of the demo tasks are left out of the
corpus, so pretraining never sees the sentences the tasks are evaluated on.
"""
import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.errors import ConfigError, DataError
from pipeline.manifest import MANIFEST_NAME, changed_files, manifest_matches, read_manifest, write_manifest
from quickstart.demo_corpus import collect_articles, default_source_roots, sources_fingerprint, write_corpus
from quickstart.demo_tasks import OWN_DIR, draw_demo_examples, split_articles, write_demo_tasks, write_own_demo_tasks

# Bump when the collection, filtering or task rules change: existing outputs then count as stale.
DEMO_DATA_VERSION = 3  # 2: MRPC-format rows are a third label 1, 8000 training pairs; 3: the own tasks
OUTPUTS = ("corpus", "glue", OWN_DIR)
DEFAULT_TARGET_CORPUS_MB = 5.0
# (train, dev, test) examples per task. The sentence-pair task gets four times the training pairs: judging whether two
# sentences belong together is learnt far more slowly than word order (measured in BENCHMARKS.md).
DEFAULT_COLA_SIZES = (2000, 400, 400)
DEFAULT_MRPC_SIZES = (8000, 400, 400)


def _check_arguments(target_corpus_mb, cola_sizes, mrpc_sizes, workers) -> None:
    problems = []
    if not target_corpus_mb > 0:
        problems.append(f"target_corpus_mb must be > 0, got {target_corpus_mb}")
    for name, sizes in (("cola_sizes", cola_sizes), ("mrpc_sizes", mrpc_sizes)):
        if len(sizes) != 3 or any(int(n) != n or n < 2 for n in sizes):
            problems.append(f"{name} must be three integers >= 2 (train, dev, test examples), got {list(sizes)}")
    if workers is not None and workers < 1:
        problems.append(f"workers must be >= 1, got {workers}")
    if problems:
        raise ConfigError(problems)


def build_demo_data(output_dir, seed=42, target_corpus_mb=DEFAULT_TARGET_CORPUS_MB, cola_sizes=DEFAULT_COLA_SIZES,
                    mrpc_sizes=DEFAULT_MRPC_SIZES, source_roots=None, workers=None) -> dict:
    """Build (or find complete) the demo data in ``output_dir``; returns the manifest. ``cola_sizes`` / ``mrpc_sizes``
    are (train, dev, test) example counts; ``workers`` (default: up to 4 CPUs) never change the output."""
    _check_arguments(target_corpus_mb, cola_sizes, mrpc_sizes, workers)
    output_dir = Path(output_dir)
    roots = [Path(r) for r in (source_roots if source_roots is not None else default_source_roots())]
    # Everything that determines the output files (the worker count does not).
    settings = {"version": DEMO_DATA_VERSION, "seed": int(seed), "target_corpus_mb": float(target_corpus_mb),
                "cola_sizes": [int(n) for n in cola_sizes], "mrpc_sizes": [int(n) for n in mrpc_sizes],
                "sources": sources_fingerprint(roots)}
    if manifest_matches(output_dir, settings):  # a finished build if every file it lists is still there
        files = read_manifest(output_dir).get("files", {})
        if files and not changed_files(output_dir, {name: {"bytes": size} for name, size in files.items()}):
            return read_manifest(output_dir)

    started = time.perf_counter()
    workers = workers or min(4, os.cpu_count() or 1)
    articles = collect_articles(int(target_corpus_mb * 1_000_000), roots, workers=workers)
    if not articles:
        raise DataError(f"no Python docstrings with prose were found under {', '.join(map(str, roots))}: "
                        "the demo corpus needs the standard library or installed packages with source files")
    sizes = {"CoLA": settings["cola_sizes"], "MRPC": settings["mrpc_sizes"]}
    pools = split_articles(articles, seed, sizes)
    examples = draw_demo_examples(pools, seed, sizes)  # raises before anything is written when material is short
    heldout = set(pools["dev"].articles) | set(pools["test"].articles)
    corpus_articles = [a for i, a in enumerate(articles) if i not in heldout]

    (output_dir / MANIFEST_NAME).unlink(missing_ok=True)  # from here on the folder is not a finished build
    staging = output_dir / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write_corpus(corpus_articles, staging / "corpus")
    task_rows = write_demo_tasks(examples, staging / "glue", seed)
    own_rows = write_own_demo_tasks(examples["CoLA"], staging / OWN_DIR)
    for name in OUTPUTS:
        shutil.rmtree(output_dir / name, ignore_errors=True)
        os.replace(staging / name, output_dir / name)
    staging.rmdir()

    files = {str(path.relative_to(output_dir)): path.stat().st_size
             for name in OUTPUTS for path in sorted((output_dir / name).rglob("*")) if path.is_file()}
    corpus_bytes = sum(size for name, size in files.items() if name.startswith("corpus/"))
    return write_manifest(
        output_dir, "demo_data", settings, files=files,
        corpus={"dir": "corpus", "bytes": corpus_bytes, "articles": len(corpus_articles),
                "paragraphs": sum(len(a.paragraphs) for a in corpus_articles),
                "words": sum(a.num_words() for a in corpus_articles),
                "heldout_articles": len(heldout)},
        glue={"dir": "glue", "rows": task_rows}, own={"dir": OWN_DIR, "rows": own_rows},
        build_seconds=round(time.perf_counter() - started, 2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build the offline quickstart data: a corpus of Python docstrings "
                                                 "and demo tasks in the GLUE folder layout.")
    parser.add_argument("--output_dir", required=True, help="folder to write corpus/, glue/ and manifest.json into")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--target_corpus_mb", type=float, default=DEFAULT_TARGET_CORPUS_MB,
                        help="stop collecting text at about this many MB (dev/test articles are then held out)")
    parser.add_argument("--cola_sizes", type=int, nargs=3, default=list(DEFAULT_COLA_SIZES),
                        metavar=("TRAIN", "DEV", "TEST"))
    parser.add_argument("--mrpc_sizes", type=int, nargs=3, default=list(DEFAULT_MRPC_SIZES),
                        metavar=("TRAIN", "DEV", "TEST"))
    parser.add_argument("--workers", type=int, default=None, help="processes parsing source files (default: up to 4)")
    args = parser.parse_args(argv)
    try:
        manifest = build_demo_data(args.output_dir, args.seed, args.target_corpus_mb, args.cola_sizes,
                                   args.mrpc_sizes, workers=args.workers)
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    summary = {key: manifest[key] for key in ("corpus", "glue", "build_seconds") if key in manifest}
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
