"""Which pretraining recipe makes the quickstart's few CPU minutes count, measured in one run.

Each recipe is the quickstart (``configs/quickstart.yaml``) with some keys overridden. For each one this runs the
whole pipeline through ``main.py`` (the data is built once and shared; a recipe already complete is skipped, so a
rerun only prints the table), then prints, per recipe: pretraining wall time and its ratio to the first recipe,
validation loss at the first and last evaluation, the first step whose validation loss falls below ``--plateau``
(where the model starts to use context instead of word frequencies alone), and for each demo task the best
median-over-seeds dev score of the pretrained model, of the same architecture from random weights, and their
difference.

    python benchmarks/bench_quickstart_recipe.py                  # the two recipes below
    python benchmarks/bench_quickstart_recipe.py --recipe tiny-4k MODEL.PRESET bert-tiny PRETRAIN.NUM_STEPS 4000

Default recipes: ``mini-same-time`` (bert-mini instead of bert-tiny, for about the same pretraining wall time) and
``quickstart``, the config as it is.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

QUICKSTART = REPO_ROOT / "configs" / "quickstart.yaml"
DEFAULT_RECIPES = [
    # bert-mini for about the wall time of the quickstart's 6000 bert-tiny steps (~3.5x slower per step on a CPU)
    ["mini-same-time", "MODEL.PRESET", "bert-mini", "PRETRAIN.NUM_STEPS", "1700",
     "PRETRAIN.VALIDATION_EVERY_STEPS", "250", "PRETRAIN.CHECKPOINT_EVERY_STEPS", "250"],
    ["quickstart"],
]


def recipe_opts(output_root: Path, overrides: list) -> list:
    """``--opts`` pairs for one recipe: its overrides, with every output under ``output_root``."""
    demo = output_root / "demo_data"
    return ["SYSTEM.OUTPUT_ROOT", str(output_root), "DEMO_DATA.OUTPUT_DIR", str(demo),
            "DATASET.CUSTOMIZED_DATASETS", f"[{demo / 'corpus'}]", "FINETUNE.GLUE_DIR", str(demo / "glue"),
            *overrides]


def run_recipe(opts: list) -> Path:
    """Run the pipeline for one recipe (streaming its output) and return its run folder."""
    from pipeline import layout
    from orchestration.stages import load_config

    command = [sys.executable, str(REPO_ROOT / "main.py"), "--config", str(QUICKSTART), "--opts", *opts]
    code = subprocess.run(command, cwd=REPO_ROOT).returncode
    if code != 0:
        sys.exit(f"error: the pipeline exited with code {code} for this recipe (see above); fix it and rerun: "
                 "finished recipes are skipped")
    return layout.run_dir(load_config(str(QUICKSTART), opts))


def metrics_rows(run_dir: Path) -> list:
    """Every record of the run's pretraining metrics.jsonl (training and validation lines alike)."""
    rows = []
    for line in (run_dir / "pretrain" / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn last line
    return rows


def summarize(name: str, run_dir: Path, plateau: float) -> dict:
    rows = metrics_rows(run_dir)
    validation = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    below = next((step for step, loss in validation if loss < plateau), None)
    return {"recipe": name, "run": str(run_dir), "pretrain_s": max(r["elapsed_s"] for r in rows),
            "steps": max(r["step"] for r in rows), "val_first": validation[0], "val_last": validation[-1],
            "plateau_exit_step": below, "tasks": (results.get("random_init") or {}).get("tasks", {})}


def print_table(summaries: list, plateau: float) -> None:
    base = summaries[0]["pretrain_s"]
    tasks = list(summaries[0]["tasks"])
    header = ["recipe", "steps", "pretrain s", "x first", "val loss (first -> last)", f"step < {plateau:g}"]
    for task in tasks:
        metric = summaries[0]["tasks"][task]["metric"]
        header += [f"{task} {metric} pretrained", "random init", "difference"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for s in summaries:
        (first_step, first), (last_step, last) = s["val_first"], s["val_last"]
        cells = [s["recipe"], str(s["steps"]), f"{s['pretrain_s']:.0f}", f"{s['pretrain_s'] / base:.2f}",
                 f"{first:.2f} (step {first_step}) -> {last:.2f} (step {last_step})",
                 str(s["plateau_exit_step"] or "never")]
        for task in tasks:
            entry = s["tasks"].get(task, {})
            values = [entry.get("pretrained"), entry.get("random_init"), entry.get("difference")]
            cells += ["-" if v is None else f"{100 * v:+.1f}" if i == 2 else f"{100 * v:.1f}"
                      for i, v in enumerate(values)]
        print("| " + " | ".join(cells) + " |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", action="append", nargs="+", metavar="NAME [KEY VALUE ...]",
                        help="a recipe: a name, then config keys and values overriding configs/quickstart.yaml "
                             "(repeatable; default: mini-same-time and quickstart)")
    parser.add_argument("--output_root", default=str(REPO_ROOT / "runs" / "bench_quickstart_recipe"),
                        help="SYSTEM.OUTPUT_ROOT of every recipe (the demo data is built there once)")
    parser.add_argument("--plateau", type=float, default=5.5,
                        help="validation loss under which the model counts as past the word-frequency plateau")
    args = parser.parse_args(argv)
    recipes = args.recipe or DEFAULT_RECIPES
    for recipe in recipes:
        if len(recipe) % 2 != 1:
            parser.error(f"recipe {recipe[0]!r}: give KEY VALUE pairs after the name, got {recipe[1:]}")
    output_root = Path(args.output_root).resolve()
    summaries = []
    for name, *overrides in recipes:
        print(f"=== recipe {name}: {' '.join(overrides) or '(the quickstart as it is)'}", flush=True)
        run_dir = run_recipe(recipe_opts(output_root, overrides))
        summaries.append(summarize(name, run_dir, args.plateau))
    print()
    print_table(summaries, args.plateau)
    return 0


if __name__ == "__main__":
    sys.exit(main())
