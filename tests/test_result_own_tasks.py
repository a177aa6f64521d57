"""Result collection with tasks of one's own beside a GLUE task: the one selection rule on each task's metric, the
own-task table of report.md (pretrained against random init, the best configuration, a token task's entity types),
results.json's own_tasks, a zip of GLUE files only, and the stage's status."""
import json
import zipfile

from pipeline import layout
from pipeline.config import build_config
from scripts.result_collection import collect_test_result, result_collection_status, validate_config
from tests.test_result_helpers import write_glue_test_files, write_job

CONFIG = """
SYSTEM: {OUTPUT_ROOT: out}
DATASET: {ENABLED: false, ID: data-test}
PRETRAIN: {ENABLED: false, ID: bert-test}
RESULT_COLLECTION: {ALLOW_PARTIAL: true, WRITE_PLOTS: false}
FINETUNE:
  ENABLED: false
  MODEL_NAME_OR_PATH: /models/bert
  GLUE_DIR: glue
  TASKS: [RTE, triage, findings]
  SEEDS: [1, 2]
  RANDOM_INIT_BASELINE: true
  SEARCH:
    SMALL: {LEARNING_RATES: [2.0e-5, 3.0e-5], BATCH_SIZES: [32], EPOCHS: [3]}
  OWN_TASKS:
    triage:
      TYPE: classification
      TRAIN_FILE: data/triage/train.csv
      VALIDATION_FILE: data/triage/dev.csv
      TEST_FILE: data/triage/test.csv
      TEXT_COLUMNS: [note]
      METRIC: macro_f1
    findings:
      TYPE: token_classification
      TRAIN_FILE: data/findings/train.conll
      VALIDATION_FILE: data/findings/dev.conll
"""
# triage is selected on macro-F1: lr 2e-5 has the better accuracy and the luckiest seed, lr 3e-5 the better median.
TRIAGE = {(2e-5, 1): (0.90, 0.70), (2e-5, 2): (0.91, 0.90), (3e-5, 1): (0.80, 0.82), (3e-5, 2): (0.81, 0.84)}
FINDINGS_F1 = {(2e-5, 1): 0.60, (2e-5, 2): 0.62, (3e-5, 1): 0.55, (3e-5, 2): 0.58}


def _token_metrics(f1: float) -> dict:
    """eval_results.json of a token job: entity-level overall figures, token accuracy and the per-type table."""
    return {"precision": f1 + 0.02, "recall": f1 - 0.02, "f1": f1, "accuracy": 0.9,
            "YEAR_precision": 0.8, "YEAR_recall": 0.75, "YEAR_f1": 0.774, "YEAR_number": 40,
            "NUM_precision": f1 - 0.1, "NUM_recall": f1, "NUM_f1": f1 - 0.05, "NUM_number": 12, "eval_f1": f1}


def _write_jobs(root, shift: float) -> None:
    """Two configurations x two seeds of RTE, triage and findings; ``shift`` lowers every figure (random init)."""
    for (lr, seed), (accuracy, macro_f1) in TRIAGE.items():
        write_job(root, "RTE", lr, 32, 3, seed, accuracy - shift)
        write_job(root, "triage", lr, 32, 3, seed, 0, predictions={"test": ["urgent", "routine"]},
                  metrics={"accuracy": accuracy - shift, "macro_f1": macro_f1 - shift, "mcc": 0.5 - shift})
        write_job(root, "findings", lr, 32, 3, seed, 0,
                  metrics=_token_metrics(FINDINGS_F1[lr, seed] - shift))


def _own_run(tmp_path, config=CONFIG, **opts):
    (tmp_path / "run.yaml").write_text(config, encoding="utf-8")
    flat = [item for key, value in opts.items() for item in (key, str(value))]
    return build_config(tmp_path / "run.yaml", flat, base_dir=tmp_path, extra_checks=[validate_config])


def test_own_tasks_are_selected_reported_beside_glue_and_kept_out_of_the_zip(tmp_path):
    write_glue_test_files(tmp_path / "glue")
    cfg = _own_run(tmp_path)
    _write_jobs(layout.finetune_dir(cfg), 0)
    _write_jobs(layout.random_init_finetune_dir(cfg), 0.3)
    results = collect_test_result(cfg)
    run_dir = layout.run_dir(cfg)
    assert json.loads((run_dir / "results.json").read_text()) == json.loads(json.dumps(results, default=str))

    # The GLUE entries, score and zip hold RTE alone.
    assert list(results["tasks"]) == ["RTE"] and list(results["random_init"]["tasks"]) == ["RTE"]
    assert results["glue_score"]["covered"] == ["RTE"]
    with zipfile.ZipFile(run_dir / "glue_submission.zip") as archive:
        assert archive.namelist() == ["RTE.tsv"]

    triage, findings = results["own_tasks"]["triage"], results["own_tasks"]["findings"]
    assert (triage["type"], triage["primary_metric"], triage["config"]["learning_rate"]) == (
        "classification", "macro_f1", 3e-5)
    assert triage["median"] == 0.83 and triage["best_seed"] == 2 and triage["seeds"] == {"1": 0.82, "2": 0.84}
    assert triage["median_metrics"] == {"accuracy": 0.805, "macro_f1": 0.83, "mcc": 0.5}
    assert round(triage["random_init"]["median"], 4) == 0.53 and round(triage["random_init"]["difference"], 4) == 0.3
    assert triage["test_predictions"] == ["finetune/triage/lr3e-05_bs32_ep3_seed2/predictions_test.tsv"]
    assert (findings["type"], findings["primary_metric"], findings["best_seed"]) == ("token_classification", "f1", 2)
    assert findings["best_job"] == "finetune/findings/lr2e-05_bs32_ep3_seed2"
    assert findings["entity_types"] == {"NUM": {"precision": 0.52, "recall": 0.62, "f1": 0.57, "number": 12},
                                        "YEAR": {"precision": 0.8, "recall": 0.75, "f1": 0.774, "number": 40}}
    assert results["own_tasks_without_results"] == {}

    report = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "| RTE | accuracy | 90.50 | 90.00-91.00 |" in report  # the GLUE table as before
    assert "| RTE | accuracy | 90.50 | 60.50 | +30.00 |" in report  # GLUE's pretrained vs random init
    assert "| triage | classification | macro_f1 | 83.00 | 53.00 | +30.00 | 82.00 to 84.00 | 2 | 3e-05 | 32 | 3 | 2 |" \
           " [table](results/triage.md) |" in report
    assert "| findings | token_classification | f1 | 61.00 | 31.00 | +30.00 | 60.00 to 62.00 | 2 | 2e-05 |" in report
    assert "| NUM | 52.00 | 62.00 | 57.00 | 12 |" in report and "| YEAR | 80.00 | 75.00 | 77.40 | 40 |" in report
    assert "`finetune/triage/lr3e-05_bs32_ep3_seed2/predictions_test.tsv`" in report
    table = (run_dir / "results" / "findings.md").read_text()
    assert "primary metric: f1" in table and "YEAR_f1" not in table  # per-type columns: the CSV's
    assert "YEAR_f1" in (run_dir / "results" / "findings.csv").read_text()

    # The stage is done until an own task's job or its METRIC changes.
    assert result_collection_status(cfg).complete
    write_job(layout.finetune_dir(cfg), "triage", 2e-5, 32, 3, 1, 0, metrics={"accuracy": 0.9, "macro_f1": 0.99})
    assert result_collection_status(cfg).detail == "settings changed since the last run"
    collect_test_result(cfg)
    remetered = _own_run(tmp_path, **{"FINETUNE.OWN_TASKS.triage.METRIC": "accuracy"})
    assert not result_collection_status(remetered).complete
    assert collect_test_result(remetered)["own_tasks"]["triage"]["config"]["learning_rate"] == 2e-5


def test_a_run_of_own_tasks_alone_has_no_glue_section_and_no_zip(tmp_path):
    cfg = _own_run(tmp_path, **{"FINETUNE.TASKS": "[triage]", "FINETUNE.GLUE_DIR": '""', "FINETUNE.RANDOM_INIT_BASELINE": False,
                                "RESULT_COLLECTION.ALLOW_PARTIAL": False})
    _write_jobs(layout.finetune_dir(cfg), 0)  # RTE's and findings' folders are not in this search
    results = collect_test_result(cfg)
    assert results["submission"] == {"path": str(layout.run_dir(cfg) / "glue_submission.zip"), "written": False,
                                     "reason": "FINETUNE.TASKS holds no GLUE task (the zip is for gluebenchmark.com:"
                                               " GLUE tasks only)"}
    assert list(results["own_tasks"]) == ["triage"] and results["tasks"] == {}
    assert results["own_tasks"]["triage"]["random_init"] is None
    report = (layout.run_dir(cfg) / "report.md").read_text(encoding="utf-8")
    assert "## GLUE score" not in report and "## Best configuration per task" not in report
    assert "| triage | classification | macro_f1 | 83.00 | 82.00 to 84.00 |" in report
    assert "Not written: FINETUNE.TASKS holds no GLUE task" in report
    assert result_collection_status(cfg).complete
