"""Time to quality: our pretraining against the recipes a user would pick instead, on the same clock.

Every contender (``benchmarks/time_to_quality/contenders.py``) trains a model of the same size (``--preset``), on
the same text with the same tokenizer, batch size and precision, for the same wall-clock budget, one at a time, in
its own process:

  ours            the settings table's defaults (pre-LN, ESD, lr 1e-3, warmup 6%), time-based schedule
  hf-run-mlm      HF BertForMaskedLM (post-LN) + Trainer + DataCollatorForLanguageModeling, group_texts blocks,
                  run_mlm.py's optimizer defaults at lr 1e-4, linear decay over the budget
  hf-preln-24h    HF RobertaPreLayerNormForMaskedLM with 24h-BERT's optimizer: lr 1e-3, warmup 6%, linear
  ours-linear / ours-cosine / ours-constant: ours with another curve (the ESD ablation)
  --variant NAME KEY VALUE ...: more of ours, with config overrides; DATASET.* ones (DATASET.PACKING document,
                  DATASET.MASKING_UNIT word) build that contender its own dataset from the same text

``--documents paragraphs`` (or ``sentences``) cuts the corpus into short documents first, for every contender: the
text of a hospital's notes or a support desk's tickets rather than of Wikipedia articles, where the packing decides
how much of each row is padding. The table gives samples/s and real (non-[PAD]) tokens/s side by side, and each
contender's padding share (the HF recipes' group_texts blocks have none).

Each one exports a Hugging Face folder at ``--points`` evenly spaced points of its budget (the clock stops while
it does). One evaluation then scores every folder: the held-out MLM loss on the same 1024 held-out samples with the
same masks (stock ``AutoModelForMaskedLM``), and GLUE dev scores after finetuning each final model with
``finetuning/run_glue.py`` (same flags for all; ``--tasks``, ``--seeds``, ``--train_rows``). It prints a table and
the time each contender needs to reach the final loss of the HF run_mlm recipe, and draws the loss curves.

Rerunning the same command skips what is done (a contender whose snapshots are all there, a finetuning job with
results). ``--budget_minutes`` scales the whole thing: about 10 on a 2-core CPU; hours on a GPU (with a larger
``--batch_size`` and ``--max_files``). Example, the run in BENCHMARKS.md:

    python benchmarks/bench_time_to_quality.py --corpus ../shared/data/corpus/wikipedia-en-2015 \\
        --glue_dir ../shared/data/glue --tokenizer ../shared/data/vocab --budget_minutes 10
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.document_shapes import SHAPES  # noqa: E402
from benchmarks.time_to_quality import data, evaluate, report  # noqa: E402
from benchmarks.time_to_quality.contenders import BY_NAME, CONTENDERS, REFERENCE, variant  # noqa: E402
from benchmarks.time_to_quality.harness import read_snapshots  # noqa: E402
from pipeline.manifest import read_json  # noqa: E402

TASK_METRICS = {"SST-2": "accuracy", "MRPC": "f1", "CoLA": "mcc", "RTE": "accuracy", "QNLI": "accuracy",
                "STS-B": "pearson", "WNLI": "accuracy"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder of .txt files (articles separated by"
                                                                    " blank lines)")
    parser.add_argument("--glue_dir", type=Path, default=None, help="GLUE data in the official layout (needed"
                                                                     " with --tasks)")
    parser.add_argument("--tokenizer", default="bert-base-uncased", help="tokenizer folder or hub name, for all")
    parser.add_argument("--max_files", type=int, default=40, help="corpus files used (sorted by name)")
    parser.add_argument("--documents", default="articles", choices=SHAPES,
                        help="cut the text into documents of this length for every contender: articles (as they"
                             " are), paragraphs (each line one), sentences (each sentence one)")
    parser.add_argument("--budget_minutes", type=float, default=10.0, help="training wall clock per contender")
    parser.add_argument("--points", type=int, default=8, help="snapshots per contender, evenly over the budget")
    parser.add_argument("--preset", default="bert-mini", help="model size for every contender (MODEL.PRESET)")
    parser.add_argument("--batch_size", type=int, default=64, help="samples per optimizer step, for all")
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--contenders", nargs="+", default=[c.name for c in CONTENDERS], choices=list(BY_NAME))
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME KEY VALUE",
                        help="another contender of ours: a name, then config KEY VALUE pairs")
    parser.add_argument("--tasks", nargs="*", default=["SST-2", "MRPC"], choices=list(TASK_METRICS))
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2], help="finetuning seeds")
    parser.add_argument("--train_rows", type=int, default=4000, help="finetuning rows per task")
    parser.add_argument("--finetune_lr", type=float, default=1e-4)
    parser.add_argument("--finetune_epochs", type=int, default=3)
    parser.add_argument("--held_out_samples", type=int, default=1024)
    parser.add_argument("--frac_test", type=float, default=0.02, help="share of the text held out")
    parser.add_argument("--work_dir", type=Path, default=REPO_ROOT / "runs" / "bench_time_to_quality")
    parser.add_argument("--output", type=Path, default=None, help="also write the markdown here")
    args = parser.parse_args(argv)
    if REFERENCE not in args.contenders:
        parser.error(f"--contenders must include {REFERENCE}: its final loss is the target")
    if args.tasks and args.glue_dir is None:
        parser.error("--glue_dir is needed to finetune on --tasks (give --tasks with no names to skip GLUE)")
    if args.budget_minutes <= 0 or args.points < 1:
        parser.error("--budget_minutes must be > 0 and --points >= 1")
    return args


def contender_opts(base: list, args, budget_s: float, contender) -> list:
    """The config of one contender: the dataset's, the common size, batch and budget, then its own overrides."""
    return base + ["MODEL.PRESET", args.preset, "PRETRAIN.BATCH_SIZE", str(args.batch_size),
                   "PRETRAIN.MICRO_BATCH_SIZE_PER_GPU", str(args.batch_size), "PRETRAIN.SCHEDULE_BASIS", "time",
                   "PRETRAIN.TOTAL_TRAINING_HOURS", repr(budget_s / 3600), "PRETRAIN.NUM_STEPS", str(10 ** 9),
                   "PRETRAIN.VALIDATE", "False", "SYSTEM.NUM_GPUS", "-1", *contender.overrides]


def train_contender(contender, opts: list, args, budget_s: float, config: Path) -> Path:
    """Train one contender in its own process unless it was trained with this very spec (all its snapshots there);
    returns its folder. Another budget, size, batch or recipe under the same name trains it again."""
    folder = args.work_dir / "contenders" / contender.name
    spec = {"kind": contender.kind, "hf": contender.hf, "config": str(config), "opts": opts,
            "output_dir": str(folder), "budget_s": budget_s, "points": args.points,
            "cache_dir": str(args.work_dir / "hf_data")}
    trained_with = folder / "spec.json"
    if len(read_snapshots(folder)) == args.points and read_json(trained_with) == spec:
        print(f"{contender.name}: done already ({folder})", flush=True)
        return folder
    if trained_with.exists():
        print(f"{contender.name}: trained with other settings before; training it again", flush=True)
    spec_path = args.work_dir / f"{contender.name}.spec.json"
    spec_path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
    print(f"\n=== {contender.name}: {contender.description}, {budget_s:.0f} s", flush=True)
    script = REPO_ROOT / "benchmarks" / "time_to_quality" / "train_contender.py"
    before = os.getloadavg()[0]
    code = subprocess.run([sys.executable, str(script), str(spec_path)], cwd=REPO_ROOT).returncode
    if len(read_snapshots(folder)) < args.points:
        sys.exit(f"error: {contender.name} failed (exit {code}, its output is above); rerun the same command to"
                 f" retry it")
    if code:
        print(f"warning: {contender.name} exited with code {code} after writing all its snapshots", flush=True)
    print(f"{contender.name}: load average {before:.1f} before, {os.getloadavg()[0]:.1f} after (1 min)", flush=True)
    return folder


def finetune_job_name(task: str, seed: int, args) -> str:
    """A finetuning job's folder: every setting in the name, so a rerun with other settings never reuses it."""
    return f"{task}-seed{seed}-rows{args.train_rows}-lr{args.finetune_lr:g}-epochs{args.finetune_epochs}"


def main(argv=None) -> int:
    args = parse_args(argv)
    args.work_dir = args.work_dir.resolve()
    if Path(args.tokenizer).exists():  # the same folder named from another directory is the same run
        args.tokenizer = str(Path(args.tokenizer).resolve())
    args.work_dir.mkdir(parents=True, exist_ok=True)
    budget_s = 60 * args.budget_minutes
    contenders = [BY_NAME[name] for name in args.contenders] + [variant(v[0], v[1:]) for v in args.variant]
    config = args.work_dir / "bench.yaml"
    config.write_text("# bench_time_to_quality.py: the settings are given with --opts\n", encoding="utf-8")
    corpus_name = "corpus" if args.documents == "articles" else f"corpus-{args.documents}"
    folder = data.corpus_subset(args.corpus.resolve(), args.max_files, args.work_dir / corpus_name, args.documents)
    base = data.dataset_opts(args.work_dir, folder, args.tokenizer, args.seq_length, args.frac_test)
    cfg = data.build_dataset(config, base)
    held_out = data.write_held_out(cfg, args.work_dir / data.HELD_OUT_NAME, args.held_out_samples)

    rows = []
    for contender in contenders:
        own_data = data.dataset_overrides(contender.overrides)  # another packing or masking unit: its own dataset
        contender_cfg = data.build_dataset(config, base + own_data) if own_data else cfg
        opts = contender_opts(base, args, budget_s, contender)
        folder = train_contender(contender, opts, args, budget_s, config)
        snapshots = read_snapshots(folder)
        losses = evaluate.snapshot_losses(folder, snapshots, held_out)
        print(f"{contender.name}: held-out loss " + ", ".join(f"{s['train_s']:.0f} s {l:.3f}"
                                                             for s, l in zip(snapshots, losses)), flush=True)
        padding = 0.0 if contender.kind == "hf" else data.padding_share(contender_cfg)  # group_texts: full blocks
        rows.append({"name": contender.name, "description": contender.description, "steps": snapshots[-1]["step"],
                     "samples": snapshots[-1]["samples"], "real_tokens": snapshots[-1].get("real_tokens"),
                     "padding": padding, "folder": folder,
                     "curve": [(s["train_s"], loss) for s, loss in zip(snapshots, losses)], "glue": {}})
    for row in rows:
        final = row["folder"] / read_snapshots(row["folder"])[-1]["folder"]
        for task in args.tasks:
            row["glue"][task] = [evaluate.finetune(final, task, seed, row["folder"] / "glue" / finetune_job_name(task, seed, args),
                                                   args.glue_dir.resolve(), args.train_rows, args.finetune_lr,
                                                   args.finetune_epochs) for seed in args.seeds]
            scores = ", ".join(f"{100 * job[TASK_METRICS[task]]:.1f}" for job in row["glue"][task])
            print(f"{row['name']}: {task} {TASK_METRICS[task]} {scores}", flush=True)

    reference = next(r for r in rows if r["name"] == REFERENCE)
    target, reference_s = reference["curve"][-1][1], reference["curve"][-1][0]
    tasks = [(task, TASK_METRICS[task]) for task in args.tasks]
    if "MRPC" in args.tasks:
        tasks.append(("MRPC", "accuracy"))
    plateau = data.word_frequency_loss(cfg, held_out)
    glue = (f" GLUE: mean over seeds {args.seeds} of {args.train_rows} training rows, lr {args.finetune_lr:g},"
            f" {args.finetune_epochs} epochs." if args.tasks else "")
    figure = report.plot_curves(rows, target, plateau, args.work_dir / "time_to_quality.png")
    text = "\n".join([
        f"`python benchmarks/bench_time_to_quality.py {' '.join(sys.argv[1:] if argv is None else argv)}`", "",
        f"{args.preset}, batch {args.batch_size} x {args.seq_length} tokens, {args.budget_minutes:g} min of training"
        f" each; the first {args.max_files} corpus files, one {args.documents[:-1]} per document; held-out loss over"
        f" {len(held_out['input_ids'])} samples of the default dataset (same rows and masks for all);{glue}"
        f" Target: {REFERENCE}'s final held-out loss {target:.3f}; 'x budget' is the time to reach it over"
        f" {REFERENCE}'s {reference_s:.0f} s. Predicting from word frequencies alone scores {plateau:.3f} on the"
        f" same held-out tokens (the plateau a masked LM leaves when it starts to use the context).", "",
        *(f"- **{r['name']}**: {r['description']}" for r in rows), "",
        report.results_table(rows, target, reference_s, tasks), "", f"Figure: {figure}", ""])
    print("\n" + text)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
