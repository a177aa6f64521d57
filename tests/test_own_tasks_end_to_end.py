"""Tasks of one's own through ``main.py`` as a user runs them, on real text (the quickstart's demo sentences): a pair
classification, a regression started from it by STILT, and an entity task, each with two seeds and the random-init
control, into report.md and results.json; then an edited data file makes its task's jobs due again, and only
them."""
import csv
import json
import os

import yaml

from finetuning.search_plan import SearchTree
from orchestration.stages import load_config
from pipeline import layout
from tests.test_finetuning_fixtures import write_tiny_model

def _pair_task(demo_dir, folder):
    """The demo MRPC-format rows (is #2 the sentence after #1?) as one's own CSV with columns a, b, y."""
    folder.mkdir()
    for split in ("train", "dev"):
        with open(demo_dir / "glue" / "MRPC" / f"{split}.tsv", encoding="utf-8-sig") as f:
            rows = [line.rstrip("\n").split("\t") for line in f][1:]
        with open(folder / f"{split}.csv", "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([("a", "b", "y")] + [(row[3], row[4], row[0]) for row in rows])
    return folder


def _regression_task(demo_dir, folder):
    """The demo word-order rows with a score: 1.0 for a sentence as written, 0.0 for a shuffled one (JSON lines)."""
    folder.mkdir()
    for split in ("train", "dev"):
        with open(demo_dir / "own" / "word_order" / f"{split}.csv", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        (folder / f"{split}.jsonl").write_text("".join(
            json.dumps({"text": row["text"], "score": float(row["label"] == "original")}) + "\n" for row in rows),
            encoding="utf-8")
    return folder


def test_pair_classification_regression_and_entities_run_through_main_into_the_report(tmp_path,
                                                                                     quickstart_demo_dir):
    from main import main

    model = write_tiny_model(tmp_path / "model")
    pair, scores = _pair_task(quickstart_demo_dir, tmp_path / "pair"), _regression_task(quickstart_demo_dir,
                                                                                       tmp_path / "scores")
    mentions = quickstart_demo_dir / "own" / "mentions"
    config = {"DATASET": {"ENABLED": False}, "PRETRAIN": {"ENABLED": False}, "SYSTEM": {"NUM_GPUS": 0}, "FINETUNE": {
        "MODEL_NAME_OR_PATH": str(model), "TASKS": ["adjacent", "scores", "mentions"], "SEEDS": [1, 2],
        "RANDOM_INIT_BASELINE": True, "MAX_SEQ_LENGTH": 48, "MAX_TRAIN_SAMPLES": 64, "MAX_EVAL_SAMPLES": 24,
        "STILT": {"SOURCE": "adjacent", "TARGETS": ["scores"]},
        "SEARCH": {"SMALL": {"LEARNING_RATES": [1e-3], "BATCH_SIZES": [16], "EPOCHS": [1]}},
        "OWN_TASKS": {
            "adjacent": {"TYPE": "classification", "TRAIN_FILE": str(pair / "train.csv"),
                         "VALIDATION_FILE": str(pair / "dev.csv"), "TEXT_COLUMNS": ["a", "b"], "LABEL_COLUMN": "y",
                         "METRIC": "f1", "POSITIVE_LABEL": "1"},
            "scores": {"TYPE": "regression", "TRAIN_FILE": str(scores / "train.jsonl"),
                       "VALIDATION_FILE": str(scores / "dev.jsonl"), "LABEL_COLUMN": "score", "METRIC": "spearman"},
            "mentions": {"TYPE": "token_classification", "TRAIN_FILE": str(mentions / "train.conll"),
                         "VALIDATION_FILE": str(mentions / "dev.conll"), "TEST_FILE": str(mentions / "test.conll")}}}}
    config_path = tmp_path / "own.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    opts = ["--config", str(config_path), "--opts", "SYSTEM.OUTPUT_ROOT", str(tmp_path / "runs")]
    assert main(opts) == 0

    cfg = load_config(config_path, opts[3:])
    run = layout.run_dir(cfg)
    results = json.loads((run / "results.json").read_text())["own_tasks"]
    assert {name: (entry["type"], entry["primary_metric"]) for name, entry in results.items()} == {
        "adjacent": ("classification", "f1"), "scores": ("regression", "spearman"),
        "mentions": ("token_classification", "f1")}
    for name, entry in results.items():
        assert len(entry["seeds"]) == 2 and entry["random_init"] is not None, name
    stilt = json.loads((run / results["scores"]["best_job"] / "job.json").read_text())["init_from"]
    assert stilt.startswith("adjacent/")  # the regression started from the pair task's best job
    report = (run / "report.md").read_text()
    for row in ("| adjacent | classification | f1 |", "| scores | regression | spearman |",
                "| mentions | token_classification | f1 |"):
        assert row in report
    predictions = (run / results["mentions"]["best_job"] / "predictions_test.tsv").read_text().splitlines()
    words = [line.split("\t")[0] for line in (mentions / "test.conll").read_text().split("\n\n")[0].splitlines()]
    assert predictions[0] == "index\tprediction" and len(predictions[1].split("\t")[1].split()) == len(words)

    tree = SearchTree(cfg, layout.finetune_dir(cfg), random_init=False)
    init = tree.stilt_init()
    assert all(tree.counts_as_done(job, init) for jobs in tree.jobs.values() for job in jobs)
    os.utime(scores / "dev.jsonl", ns=(1, 1))  # an edited dev file: the regression's jobs are due again, no other
    assert {job.task for jobs in tree.jobs.values() for job in jobs if not tree.counts_as_done(job, init)} == {"scores"}
