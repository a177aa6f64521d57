"""The table of ``benchmarks/gpu_check.sh``, from what its phases left in OUT; exits 1 when a phase's result fails
its check (the loss did not fall, fp16 logged no loss scale, a file is missing), naming what failed.

    python benchmarks/gpu_check_report.py --out runs/gpu_check --config runs/gpu_check/gpu_check.yaml \\
        --precisions fp16 bf16
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import layout  # noqa: E402
from orchestration.stages import load_config  # noqa: E402
from pipeline.manifest import read_json  # noqa: E402
from pretraining.metrics_log import read_metrics, split_metrics  # noqa: E402

HEADER = ("| what | precision | samples/s | MFU | loss: first -> last logged | loss scale (first -> last) |"
          " peak GPU MiB | wall s |")


CONTENDERS = {"ours": "ours", "hf-full": "HF BertForMaskedLM", "hf-gather": "HF, head at masked rows"}


class CheckFailed(Exception):
    """A phase ran but its result is wrong."""


def read_phases(out: Path) -> dict:
    """{phase: (wall seconds, peak MiB or "-")} from OUT/phases.tsv (written by gpu_check.sh)."""
    phases = {}
    for line in (out / "phases.tsv").read_text().splitlines():
        name, seconds, peak = line.split("\t")
        phases[name] = (int(seconds), peak)
    return phases


def _percent(value) -> str:
    return f"{100 * value:.1f}%" if value is not None else "-"


def pretrain_row(cfg, precision: str, phase: tuple) -> str:
    rows, _ = split_metrics(read_metrics(layout.pretrain_dir(cfg) / "metrics.jsonl"))
    manifest = read_json(layout.pretrain_dir(cfg) / "manifest.json")
    if not rows or not isinstance(manifest, dict):
        raise CheckFailed(f"{precision} pretraining left no metrics or no manifest in {layout.pretrain_dir(cfg)}")
    first, last = rows[0], rows[-1]
    if not last["loss"] < first["loss"]:
        raise CheckFailed(f"{precision} pretraining: the loss did not fall ({first['loss']:.3f} -> {last['loss']:.3f})")
    scales = [row.get("loss_scale") for row in rows]
    if None in scales:
        raise CheckFailed(f"{precision} pretraining: a metrics line has no loss_scale")
    if precision == "fp16" and max(scales) <= 1:
        raise CheckFailed("fp16 pretraining logged no dynamic loss scale above 1")
    steady = rows[1:] or rows  # the first window holds the start-up
    mfu = [row["mfu"] for row in steady if row.get("mfu") is not None]
    return (f"| pretrain {cfg.MODEL.PRESET} (main.py, {manifest['steps']} steps, {manifest['skipped_steps']} skipped) |"
            f" {precision} | {statistics.median(r['samples_per_s'] for r in steady):.0f} |"
            f" {_percent(statistics.median(mfu) if mfu else None)} | {first['loss']:.3f} -> {last['loss']:.3f} |"
            f" {scales[0]:g} -> {scales[-1]:g} | {phase[1]} | {phase[0]} |")


def bench_rows(out: Path, phase: tuple) -> list:
    rows = json.loads((out / "bench.json").read_text())
    lines = []
    for row in rows:
        name = CONTENDERS[row["contender"]]
        lines.append(f"| bench {row['preset']} {row['batch']} x {row['seq_len']}: {name} ({row['vs_ours']:g}x ours) |"
                     f" bf16 autocast |"
                     f" {row['samples_per_s']:.0f} | {_percent(row['mfu'])} | - | - |"
                     f" {row['peak_memory_mib'] if row['peak_memory_mib'] is not None else '-'} | {phase[0]} |")
    return lines


def finetune_row(cfg, phase: tuple) -> str:
    jobs = sorted((layout.finetune_dir(cfg) / "CoLA").glob("lr*"))
    results = read_json(jobs[0] / "eval_results.json") if jobs else None
    if not isinstance(results, dict):
        raise CheckFailed(f"the finetuning job left no eval_results.json under {layout.finetune_dir(cfg) / 'CoLA'}")
    return (f"| finetune the demo task (CoLA format), MCC {results['mcc']:.3f} | bf16 | - | - |"
            f" eval loss {results['eval_loss']:.3f} | - | {phase[1]} | {phase[0]} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="the OUT folder of gpu_check.sh")
    parser.add_argument("--config", required=True, help="the config gpu_check.sh wrote")
    parser.add_argument("--precisions", nargs="+", required=True, help="the pretraining precisions it ran")
    args = parser.parse_args(argv)
    out = Path(args.out)
    phases = read_phases(out)
    try:
        lines = [HEADER, "|" + "---|" * 8]
        for precision in args.precisions:
            cfg = load_config(args.config, ["PRETRAIN.PRECISION", precision])
            lines.append(pretrain_row(cfg, precision, phases[f"pretrain-{precision}"]))
        lines += bench_rows(out, phases["bench"])
        cfg = load_config(args.config, ["PRETRAIN.PRECISION", "bf16", "FINETUNE.ENABLED", "True"])
        lines.append(finetune_row(cfg, phases["finetune-bf16"]))
    except (CheckFailed, OSError, KeyError) as e:
        print(f"gpu_check: check failed: {e}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
