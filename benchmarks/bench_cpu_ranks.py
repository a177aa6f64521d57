"""Pretraining throughput on the CPU with 1 process against 2 ranks (SYSTEM.PROCESSES_PER_NODE 2), same global batch.

Builds real samples first: ``--files`` files of the given text corpus through ``dataset/shard_data.py`` and
``dataset/generate_samples.py`` with the given vocabulary (128-token dynamic samples). Then, in interleaved rounds,
``run_pretraining.py`` runs as one plain process (OMP threads = all cores) and as 2 ranks under the DeepSpeed
launcher (gloo, cores / 2 threads each, as the pipeline launches them), on the same global batch, and the table
reports each one's median samples/s over the logged windows after the first (start-up excluded) and the ratio.

    python benchmarks/bench_cpu_ranks.py --corpus ../shared/data/corpus/wikipedia-en-2015 --vocab ../shared/data/vocab
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from pipeline.hardware import free_port  # noqa: E402
from pretraining.metrics_log import read_metrics, split_metrics  # noqa: E402


def build_samples(corpus: Path, files: int, vocab: Path, work: Path) -> Path:
    text = work / "corpus"
    text.mkdir()
    for path in sorted(p for p in corpus.rglob("*") if p.is_file())[:files]:
        shutil.copy(path, text / f"{path.name}.txt")
    run([sys.executable, "dataset/shard_data.py", "--output_dir", str(work / "shards"), "--num_train_shards", "4",
         "--num_test_shards", "1", "--frac_test", "0.02", "--max_memory", "2", "--dataset", "custom", str(text)])
    samples = work / "samples"
    run([sys.executable, "dataset/generate_samples.py", "--dir", str(work / "shards"), "-o", str(samples),
         "--tokenizer_name", str(vocab), "--max_seq_length", "128", "--n_processes", "2"])
    return samples


def run(command, env=None) -> None:
    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def train(samples: Path, vocab: Path, out: Path, ranks: int, args) -> float:
    """Median samples/s of one run, over its logged windows after the first."""
    flags = ["pretraining/run_pretraining.py", "--dataset_path", str(samples), "--tokenizer_name", str(vocab),
             "--output_dir", str(out), "--preset", args.preset, "--train_batch_size", str(args.batch_size),
             "--train_micro_batch_size_per_gpu", str(args.batch_size // ranks), "--max_steps", str(args.steps),
             "--print_steps", str(args.log_every), "--validation_every_steps", "0", "--no-do_validation",
             "--checkpoint_every_steps", str(10 * args.steps), "--precision", args.precision]
    cores = args.cores or os.cpu_count() or 1
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, cores // ranks)), OMP_WAIT_POLICY="PASSIVE", HF_HUB_OFFLINE="1",
               WANDB_MODE="disabled")  # passive: spinning OpenMP threads distort a shared CPU (bench_pretrain.py)
    if ranks == 1:
        command = [sys.executable] + flags
    else:
        command = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", str(ranks), "--master_port",
                   str(free_port())] + flags
    run(command, env)
    rows, _ = split_metrics(read_metrics(out / "metrics.jsonl"))
    return statistics.median(row["samples_per_s"] for row in rows[1:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, help="a folder of text files (one paragraph per line)")
    parser.add_argument("--vocab", required=True, help="a folder holding vocab.txt (or a tokenizer folder)")
    parser.add_argument("--files", type=int, default=4, help="corpus files to turn into samples")
    parser.add_argument("--preset", default="bert-mini")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch (the same for 1 and 2 ranks)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cores", type=int, default=0, help="cores the ranks share (0 = all)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        samples = build_samples(Path(args.corpus), args.files, Path(args.vocab), work)
        rates = {1: [], 2: []}
        for round_index in range(args.rounds):
            for ranks in ((1, 2) if round_index % 2 == 0 else (2, 1)):
                out = work / f"run{round_index}_{ranks}"
                rates[ranks].append(train(samples, Path(args.vocab), out, ranks, args))
                print(f"round {round_index + 1}: {ranks} rank(s): {rates[ranks][-1]:.1f} samples/s", flush=True)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    ratios = [b / a for a, b in zip(rates[1], rates[2])]
    print(f"\n{args.preset}, global batch {args.batch_size} x 128, {args.precision}, {args.steps} steps,"
          f" {args.cores or os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print("| processes | samples/s (median) | vs 1 process |\n|---|---|---|")
    print(f"| 1 (plain python, {args.cores or os.cpu_count()} threads) | {one:.1f} | 1.00x |")
    print(f"| 2 ranks (DeepSpeed launcher, gloo) | {two:.1f} | {statistics.median(ratios):.2f}x"
          f" (per-round {', '.join(f'{r:.2f}' for r in ratios)}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
