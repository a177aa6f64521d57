"""The quickstart, end to end, through main.py as a user runs it (a faster variant through --opts): all five
stages do real work; a rerun skips every stage; --force pretrain redoes pretraining and what depends on it."""
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Steps, not the quickstart's 8-minute budget: TOTAL_TRAINING_HOURS also stops a step-based run, and on a loaded
# machine the start-up alone could use it up.
FAST = ["PRETRAIN.SCHEDULE_BASIS", "step", "PRETRAIN.NUM_STEPS", "16", "PRETRAIN.TOTAL_TRAINING_HOURS", "1", "PRETRAIN.VALIDATION_EVERY_STEPS", "8", "PRETRAIN.CHECKPOINT_EVERY_STEPS", "8",
        "PRETRAIN.LOG_EVERY_STEPS", "4", "PRETRAIN.BATCH_SIZE", "32", "PRETRAIN.MICRO_BATCH_SIZE_PER_GPU", "32",
        "FINETUNE.MAX_TRAIN_SAMPLES", "64", "FINETUNE.MAX_EVAL_SAMPLES", "64", "FINETUNE.SEEDS", "[1]",
        "FINETUNE.SEARCH.SMALL.LEARNING_RATES", "[3.0e-4]", "FINETUNE.SEARCH.SMALL.EPOCHS", "[1]",
        "TOKENIZER.VOCAB_SIZE", "2048"]


def _main(tmp_path, demo, *extra, opts=()):
    command = [sys.executable, str(REPO_ROOT / "main.py"), "--config", str(REPO_ROOT / "configs" / "quickstart.yaml"),
               *extra, "--opts", "SYSTEM.OUTPUT_ROOT", str(tmp_path / "runs"), "DEMO_DATA.OUTPUT_DIR", str(demo),
               "DATASET.CUSTOMIZED_DATASETS", f"[{demo / 'corpus'}]", "FINETUNE.GLUE_DIR", str(demo / "glue"), *FAST,
               *opts]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_quickstart_runs_every_stage_then_skips_then_force_redoes_pretraining(tmp_path, quickstart_demo_dir):
    from huggingface_hub import ModelCard
    from transformers import AutoModelForMaskedLM

    first = _main(tmp_path, quickstart_demo_dir)
    for stage in ("install", "dataset", "pretrain", "finetune", "result_collection"):
        assert f"[done] {stage}" in first
    assert "to instantiate a model of type" not in first  # transformers knows the pre-LN model wherever it loads
    run_dir = next((tmp_path / "runs" / "runs").iterdir())
    model = AutoModelForMaskedLM.from_pretrained(run_dir / "pretrain" / "final_model")
    assert model.config.vocab_size >= 2048
    steps = [json.loads(line)["step"] for line in (run_dir / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 16
    card = ModelCard.load(run_dir / "pretrain" / "final_model" / "README.md")  # the card says what the run recorded
    manifest = json.loads((run_dir / "pretrain" / "manifest.json").read_text())
    assert (card.data.library_name, card.data.pipeline_tag, card.data.license) == ("transformers", "fill-mask", "other")
    assert card.data.datasets is None  # a local corpus folder: described in the body, not named as a Hub dataset
    assert f"| steps | {manifest['steps']} |" in card.text
    assert f"| tokens seen | {manifest['tokens_seen']:,} |" in card.text
    assert f"| vocabulary | {model.config.vocab_size:,} |" in card.text and "![training curves]" in card.text
    assert (run_dir / "pretrain" / "final_model" / "training_curves.png").is_file()
    for tree in ("finetune", "finetune_random_init"):
        for task in ("CoLA", "MRPC"):
            job = json.loads(next((run_dir / tree / task).glob("*/job.json")).read_text())
            assert job["status"] == "completed"
    report = (run_dir / "report.md").read_text()
    assert "demo tasks, not GLUE" in report and "random init" in report
    with zipfile.ZipFile(run_dir / "glue_submission.zip") as archive:
        assert sorted(archive.namelist()) == ["CoLA.tsv", "MRPC.tsv"]
    assert (run_dir / "logs" / "pretrain.log").stat().st_size > 0

    again = _main(tmp_path, quickstart_demo_dir)
    for stage in ("dataset", "pretrain", "finetune", "result_collection"):
        assert f"[skip] {stage}" in again
    assert "[done] pretrain" not in again

    # The random-init tree is left out of the forced run: its jobs are the same code as the pretrained tree's, and
    # each finetuning job is a process of its own, the most of this test's time.
    forced = _main(tmp_path, quickstart_demo_dir, "--force", "pretrain",
                   opts=["FINETUNE.RANDOM_INIT_BASELINE", "False"])
    assert "[skip] dataset" in forced
    for stage in ("pretrain", "finetune", "result_collection"):
        assert f"[done] {stage}" in forced
    assert "finetune: 2 of 2 jobs to run" in forced  # the completed jobs were cleared, not found complete
