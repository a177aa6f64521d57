"""Fabricated inputs for the result-collection tests: finetune job folders exactly as docs/interfaces.md describes
them, GLUE test files (for row counts) and a pretraining manifest with metrics.jsonl. No tests live here."""
import json
from pathlib import Path

from finetuning.glue_tasks import FINETUNED_TASKS, GLUE_TASKS
from pipeline import layout
from pipeline.defaults import get_default_config

# Small, different test-set sizes per submission file, so that a file mixed up with another has the wrong count.
TEST_ROWS = {"CoLA": 5, "SST-2": 6, "MRPC": 7, "STS-B": 6, "QQP": 8, "MNLI-m": 9, "MNLI-mm": 10, "QNLI": 5,
             "RTE": 4, "WNLI": 3, "AX": 6}
STSB_PREDICTIONS = ["-0.3", "1.25", "2.5", "5.4", "4.9", "0"]


def make_cfg(tmp_path, glue_dir=True, **overrides):
    """A frozen config whose run folder is under ``tmp_path``; ``overrides`` are "SECTION.KEY": value pairs."""
    cfg = get_default_config()
    cfg.SYSTEM.OUTPUT_ROOT = str(tmp_path / "out")
    cfg.DATASET.ENABLED = False
    cfg.DATASET.ID = "data-test"
    cfg.PRETRAIN.ID = "bert-test"
    cfg.FINETUNE.GLUE_DIR = str(tmp_path / "glue") if glue_dir else ""
    # The search the fabricated jobs belong to: result collection leaves out folders the config does not plan.
    cfg.FINETUNE.SEEDS = [1, 2, 3]
    for grid in (cfg.FINETUNE.SEARCH.LARGE, cfg.FINETUNE.SEARCH.SMALL):
        grid.LEARNING_RATES, grid.BATCH_SIZES, grid.EPOCHS = [2e-5, 3e-5, 5e-5], [32], [3]
    for key, value in overrides.items():
        section, name = key.split(".")
        cfg[section][name] = value
    cfg.freeze()
    return cfg


def write_glue_test_files(glue_dir, rows=None) -> None:
    """Test TSVs in the official layout (header starting with ``index``), ``rows[name]`` rows each."""
    rows = {**TEST_ROWS, **(rows or {})}
    for name, count in rows.items():
        task = GLUE_TASKS["AX"] if name == "AX" else next(t for t in GLUE_TASKS.values() if name in t.test)
        path = Path(glue_dir) / task.folder / task.test[name].file
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["index\tsentence1\tsentence2"] + [f"{i}\tsentence {i}\tother {i}" for i in range(count)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def default_predictions(task: str) -> dict:
    """{submission name: [prediction, ...]} with valid server labels for every test file of ``task``."""
    names = list(GLUE_TASKS[task].test) + (["AX"] if task == "MNLI" else [])
    out = {}
    for name in names:
        if task == "STS-B":
            out[name] = STSB_PREDICTIONS[:TEST_ROWS[name]]
        else:
            labels = GLUE_TASKS["AX" if name == "AX" else task].labels
            out[name] = [labels[i % len(labels)] for i in range(TEST_ROWS[name])]
    return out


def write_job(root, task, lr, bs, ep, seed, value, status="completed", predictions=None, metrics=None,
              wall_time_s=60.0, init_from=None) -> Path:
    """One job folder; every metric of a GLUE task is ``value`` unless ``metrics`` says otherwise (an own task's
    are ``metrics`` alone, and it predicts only what ``predictions`` names)."""
    name = f"lr{lr:g}_bs{bs}_ep{ep}_seed{seed}"
    job_dir = Path(root) / task / name
    job_dir.mkdir(parents=True, exist_ok=True)
    info = {"task": task, "learning_rate": lr, "batch_size": bs, "epochs": ep, "seed": seed,
            "model_name_or_path": "/models/bert", "init_from": init_from, "status": status,
            "started_at": "2026-01-01T00:00:00", "finished_at": "2026-01-01T00:01:00", "wall_time_s": wall_time_s,
            "error": "CUDA out of memory" if status == "failed" else None}
    (job_dir / "job.json").write_text(json.dumps(info), encoding="utf-8")
    if status == "completed":
        values = {m: value for m in (GLUE_TASKS[task].metrics if task in GLUE_TASKS else ())}
        values.update(metrics or {})
        values.setdefault("eval_loss", 0.5)
        (job_dir / "eval_results.json").write_text(json.dumps(values), encoding="utf-8")
        if predictions is None:
            predictions = default_predictions(task) if task in GLUE_TASKS else {}
        for sub_name, preds in predictions.items():
            lines = ["index\tprediction"] + [f"{i}\t{p}" for i, p in enumerate(preds)]
            (job_dir / f"predictions_{sub_name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return job_dir


def write_all_tasks(root, tasks=FINETUNED_TASKS, base=0.8) -> None:
    """Two configurations x three seeds per task; the second configuration is better by one point."""
    for t, task in enumerate(tasks):
        for c, lr in enumerate((2e-5, 3e-5)):
            for s, seed in enumerate((1, 2, 3)):
                write_job(root, task, lr, 32, 3, seed, base + 0.01 * c + 0.001 * s + 0.002 * t)


def write_pretraining(cfg, steps=200) -> None:
    pretrain_dir = layout.pretrain_dir(cfg)
    pretrain_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for step in range(10, steps + 1, 10):
        lines.append({"step": step, "loss": 10 - step / 40, "lr": 1e-3 * min(1, step / 50), "samples_per_s": 100.0,
                      "tokens_per_s": 12800.0, "loss_scale": 1, "elapsed_s": step * 1.8})
        if step % 100 == 0:
            lines.append({"step": step, "val_loss": 9.5 - step / 50, "elapsed_s": step * 1.8})
    text = "\n".join(json.dumps(line) for line in lines) + "\n{\"step\": 20"  # a torn last line is skipped
    (pretrain_dir / "metrics.jsonl").write_text(text, encoding="utf-8")
    manifest = {"stage": "pretrain", "settings": {}, "steps": steps, "hours": 0.1, "final_val_loss": 5.5,
                "tokens_seen": 2_560_000, "samples_per_s": 100.0}
    (pretrain_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def make_full_run(tmp_path, **overrides):
    """A config plus every task's jobs, the GLUE test files and a pretraining record."""
    cfg = make_cfg(tmp_path, **overrides)
    write_glue_test_files(cfg.FINETUNE.GLUE_DIR)
    write_all_tasks(layout.finetune_dir(cfg))
    write_pretraining(cfg)
    return cfg
