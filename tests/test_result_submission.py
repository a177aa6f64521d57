"""glue_submission.zip: root-level names, headers, server label strings, row counts, STS-B clipping, refusal."""
import shutil
import zipfile

import pytest

from finetuning.glue_tasks import SUBMISSION_FILES
from pipeline import layout
from pipeline.errors import DataError
from scripts.best_config import select_all
from scripts.finetune_jobs import load_jobs
from scripts.result_collection import translate_test_result
from scripts.submission import plan_submission
from tests.test_result_helpers import TEST_ROWS, make_cfg, write_all_tasks, write_glue_test_files, write_job

SERVER_LABELS = {"CoLA": {"0", "1"}, "SST-2": {"0", "1"}, "MRPC": {"0", "1"}, "QQP": {"0", "1"}, "WNLI": {"0", "1"},
                 "MNLI-m": {"entailment", "neutral", "contradiction"},
                 "MNLI-mm": {"entailment", "neutral", "contradiction"},
                 "AX": {"entailment", "neutral", "contradiction"},
                 "QNLI": {"entailment", "not_entailment"}, "RTE": {"entailment", "not_entailment"}}


def _read_zip(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name).decode("utf-8").splitlines() for name in archive.namelist()}


@pytest.fixture
def full_cfg(tmp_path):
    cfg = make_cfg(tmp_path)
    write_glue_test_files(cfg.FINETUNE.GLUE_DIR)
    write_all_tasks(layout.finetune_dir(cfg))
    return cfg


def test_zip_has_the_eleven_files_at_its_root_with_headers_counts_and_server_labels(full_cfg):
    record = translate_test_result(full_cfg)
    assert record["written"] and record["missing"] == {}
    files = _read_zip(layout.run_dir(full_cfg) / "glue_submission.zip")
    assert sorted(files) == sorted(f"{name}.tsv" for name in SUBMISSION_FILES)  # no folder inside the zip
    for name in SUBMISSION_FILES:
        lines = files[f"{name}.tsv"]
        assert lines[0] == "index\tprediction"
        assert len(lines) - 1 == TEST_ROWS[name]
        assert [line.split("\t")[0] for line in lines[1:]] == [str(i) for i in range(TEST_ROWS[name])]
        predictions = {line.split("\t")[1] for line in lines[1:]}
        if name == "STS-B":
            assert all(0.0 <= float(p) <= 5.0 for p in predictions)
        else:
            assert predictions <= SERVER_LABELS[name] and len(predictions) > 1


def test_test_predictions_come_from_the_best_seed_of_the_best_config(full_cfg):
    root = layout.finetune_dir(full_cfg)
    # Make seed 2 of the best configuration the best one and give it recognisable CoLA predictions.
    write_job(root, "CoLA", 3e-5, 32, 3, 2, 0.95, predictions={"CoLA": ["1"] * TEST_ROWS["CoLA"]})
    record = translate_test_result(full_cfg)
    assert record["sources"]["CoLA"].endswith("CoLA/lr3e-05_bs32_ep3_seed2/predictions_CoLA.tsv")
    files = _read_zip(record["path"])
    assert {line.split("\t")[1] for line in files["CoLA.tsv"][1:]} == {"1"}


def test_stsb_scores_are_clipped_into_zero_to_five(full_cfg):
    record = translate_test_result(full_cfg)
    values = [line.split("\t")[1] for line in _read_zip(record["path"])["STS-B.tsv"][1:]]
    assert [float(v) for v in values] == [0.0, 1.25, 2.5, 5.0, 4.9, 0.0]
    assert any("STS-B.tsv: 2 scores clipped" in note for note in record["notes"])


def test_row_count_mismatch_with_the_test_file_is_an_error(full_cfg):
    write_glue_test_files(full_cfg.FINETUNE.GLUE_DIR, rows={"RTE": TEST_ROWS["RTE"] + 1})
    with pytest.raises(DataError, match=r"RTE\.tsv: 4 predictions but the test file .*RTE/test\.tsv has 5 rows"):
        translate_test_result(full_cfg)
    assert not (layout.run_dir(full_cfg) / "glue_submission.zip").exists()


def _overwrite_submitted_predictions(cfg, task, name, text) -> None:
    """Replace the predictions file that the submission takes for ``name`` (best seed of the best config)."""
    best = select_all(load_jobs(layout.finetune_dir(cfg)))[task].best_job
    best.predictions_path(name).write_text(text, encoding="utf-8")


@pytest.mark.parametrize("task, name, text, message", [
    ("WNLI", "WNLI", "index\tprediction\n1\t0\n0\t1\n2\t0\n", "row 1 has index '1'.*test-file order"),
    # Integer class ids are not what the server expects for MNLI.
    ("MNLI", "MNLI-mm", "index\tprediction\n" + "".join(f"{i}\t{i % 3}\n" for i in range(TEST_ROWS["MNLI-mm"])),
     "'0' .* not a MNLI-mm label the server accepts"),
    ("STS-B", "STS-B", "index\tprediction\n" + "".join(f"{i}\tnan\n" for i in range(TEST_ROWS["STS-B"])),
     "'nan' .* not a finite number"),
    ("CoLA", "CoLA", "id\tlabel\n0\t1\n", "header 'index<TAB>prediction'"),
], ids=["order", "label", "stsb-nan", "header"])
def test_a_malformed_predictions_file_is_an_error_naming_it(full_cfg, task, name, text, message):
    _overwrite_submitted_predictions(full_cfg, task, name, text)
    with pytest.raises(DataError, match=f"predictions_{name}.tsv: .*{message}"):
        translate_test_result(full_cfg)


def test_a_diverged_or_failed_job_never_replaces_the_good_predictions_in_the_zip(full_cfg):
    root = layout.finetune_dir(full_cfg)
    good = _read_zip(translate_test_result(full_cfg)["path"])
    ones = {"CoLA": ["1"] * TEST_ROWS["CoLA"]}
    for seed in (1, 2, 3):  # the best MCC, from a model whose dev loss is NaN (a record of a job that diverged)
        write_job(root, "CoLA", 1e30, 32, 3, seed, 0.99, predictions=ones, metrics={"eval_loss": float("nan")})
    write_job(root, "CoLA", 2e30, 32, 3, 1, float("nan"), predictions=ones)  # an MCC of NaN
    failed = write_job(root, "CoLA", 3e30, 32, 3, 1, 0.99, status="failed")
    (failed / "predictions_CoLA.tsv").write_text("index\tprediction\n" + "".join(
        f"{i}\t1\n" for i in range(TEST_ROWS["CoLA"])), encoding="utf-8")
    record = translate_test_result(full_cfg)
    assert record["written"] and _read_zip(record["path"]) == good
    assert record["sources"]["CoLA"].endswith("CoLA/lr3e-05_bs32_ep3_seed3/predictions_CoLA.tsv")
    problems = {job.learning_rate: job.problem for job in load_jobs(root)["CoLA"] if job.learning_rate > 1}
    assert problems == {1e30: "eval_results.json has eval_loss = nan: the training diverged (or learnt nothing)",
                        2e30: "eval_results.json has mcc = nan: the training diverged (or learnt nothing)",
                        3e30: ""}


def test_a_missing_task_is_refused_by_name_and_a_stale_zip_removed(tmp_path):
    cfg = make_cfg(tmp_path)
    write_glue_test_files(cfg.FINETUNE.GLUE_DIR)
    write_all_tasks(layout.finetune_dir(cfg))
    assert translate_test_result(cfg)["written"]
    stale = layout.run_dir(cfg) / "glue_submission.zip"
    shutil.rmtree(layout.finetune_dir(cfg) / "QQP")
    record = translate_test_result(cfg)
    assert record["refused"] and not record["written"] and not stale.exists()
    assert list(record["missing"]) == ["QQP"]
    assert "QQP.tsv (no completed QQP job)" in record["reason"] and "ALLOW_PARTIAL" in record["reason"]


def test_allow_partial_writes_the_zip_and_lists_what_is_missing(tmp_path):
    cfg = make_cfg(tmp_path, **{"RESULT_COLLECTION.ALLOW_PARTIAL": True})
    write_glue_test_files(cfg.FINETUNE.GLUE_DIR)
    write_all_tasks(layout.finetune_dir(cfg), tasks=("CoLA", "SST-2", "MNLI"))
    # The best MNLI job has no AX predictions: AX is missing, MNLI-m/-mm are not.
    best_mnli = select_all(load_jobs(layout.finetune_dir(cfg)))["MNLI"].best_job
    best_mnli.predictions_path("AX").unlink()
    record = translate_test_result(cfg)
    assert record["written"]
    assert sorted(_read_zip(record["path"])) == ["CoLA.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "SST-2.tsv"]
    assert list(record["missing"]) == ["MRPC", "STS-B", "QQP", "QNLI", "RTE", "WNLI", "AX"]
    assert "predictions_AX.tsv does not exist" in record["missing"]["AX"]


def test_without_glue_dir_the_count_is_reported_as_unchecked(tmp_path):
    cfg = make_cfg(tmp_path, glue_dir=False, **{"RESULT_COLLECTION.ALLOW_PARTIAL": True})
    write_all_tasks(layout.finetune_dir(cfg), tasks=("CoLA",))
    plan = plan_submission(select_all(load_jobs(layout.finetune_dir(cfg))), "")
    assert list(plan.files) == ["CoLA"] and plan.files["CoLA"].checked_against == ""
    note = next(n for n in plan.notes if n.startswith("CoLA.tsv"))
    assert "could not be checked against the test file" in note and "official test set has 1063" in note
