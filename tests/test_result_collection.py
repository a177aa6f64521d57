"""The result-collection stage on fabricated runs: report.md and results.json content, tables, plots, status,
demo-task labelling, the random-init comparison and refusal."""
import json
import os
import shutil
import zipfile

import pytest

from pipeline import layout
from pipeline.errors import DataError
from scripts.result_collection import collect_test_result, result_collection_status, validate_config
from tests.test_result_helpers import make_cfg, make_full_run, write_all_tasks, write_glue_test_files, write_job


def _report(cfg) -> str:
    return (layout.run_dir(cfg) / "report.md").read_text(encoding="utf-8")


def test_stage_writes_report_results_tables_plots_and_zip(tmp_path, capsys):
    cfg = make_full_run(tmp_path)
    results = collect_test_result(cfg)
    run_dir = layout.run_dir(cfg)
    for name in ("report.md", "results.json", "glue_submission.zip", "results/CoLA.md", "results/CoLA.csv",
                 "results/MNLI.md", "results/pretraining_curves.png", "results/seed_spread.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "results/seed_spread.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((run_dir / "results.json").read_text()) == json.loads(json.dumps(results, default=str))
    # Every task's best is the second configuration (lr 3e-5), its best seed the third.
    assert {t: (e["config"]["learning_rate"], e["best_seed"]) for t, e in results["tasks"].items()} == {
        t: (3e-5, 3) for t in results["tasks"]}
    assert results["glue_score"]["complete"] and results["submission"]["written"]
    report = _report(cfg)
    assert "## GLUE score" in report and "(average of all 9)" in report
    assert f"{100 * results['glue_score']['score']:.2f}" in report
    assert "| MRPC (not GLUE)" not in report and "demo" not in report.lower()
    assert "| RTE | accuracy | 82.50 | 82.40-82.60 |" in report  # median, min-max over seeds
    assert "[table](results/RTE.md)" in report
    # Pretraining summary from the pretrain manifest and metrics.jsonl.
    assert "| steps | 200 |" in report and "| final validation loss | 5.5000 |" in report
    assert "| tokens seen | 2,560,000 |" in report and "| throughput (tokens/s) | 12,800 |" in report
    assert "![Pretraining loss and learning rate](results/pretraining_curves.png)" in report
    assert "![Spread over seeds](results/seed_spread.png)" in report
    printed = capsys.readouterr().out
    assert "## CoLA" in printed and "GLUE score (dev):" in printed
    table = (run_dir / "results/CoLA.md").read_text()
    assert "| lr2e-05_bs32_ep3_seed1 | 2e-05 | 32 | 3 | 1 | 80.00 | 0.5000 | 0:01:00 | completed |" in table


def test_status_is_complete_until_a_job_changes_and_clears_only_its_own_files(tmp_path):
    cfg = make_full_run(tmp_path)
    assert not result_collection_status(cfg).complete
    collect_test_result(cfg)
    status = result_collection_status(cfg)
    assert status.complete, status.detail
    run_dir = layout.run_dir(cfg)
    assert str(run_dir) not in map(str, status.clear_paths)
    assert {str(p) for p in status.clear_paths} == {str(run_dir / n) for n in
                                                    ("report.md", "results.json", "glue_submission.zip", "results")}
    write_job(layout.finetune_dir(cfg), "RTE", 5e-5, 32, 3, 1, 0.5)  # a new completed job
    status = result_collection_status(cfg)
    assert not status.complete and status.detail == "settings changed since the last run"
    collect_test_result(cfg)
    (run_dir / "glue_submission.zip").unlink()
    assert not result_collection_status(cfg).complete


def test_an_edited_test_file_makes_the_results_stale(tmp_path):
    cfg = make_full_run(tmp_path)
    collect_test_result(cfg)
    test = tmp_path / "glue" / "CoLA" / "test.tsv"
    before = test.stat().st_mtime_ns
    test.write_text(test.read_text().replace("sentence 1", "sentence one"))
    os.utime(test, ns=(before + 10 ** 9, before + 10 ** 9))  # an edit made after the collection
    status = result_collection_status(cfg)
    assert not status.complete and status.detail == "settings changed since the last run"


def test_a_running_job_does_not_make_the_results_stale(tmp_path):
    cfg = make_full_run(tmp_path)
    collect_test_result(cfg)
    write_job(layout.finetune_dir(cfg), "RTE", 5e-5, 32, 3, 1, 0.5, status="running")
    assert result_collection_status(cfg).complete


def test_the_report_lists_the_jobs_that_failed_with_their_error_and_log(tmp_path):
    cfg = make_full_run(tmp_path)
    write_job(layout.finetune_dir(cfg), "RTE", 5e-5, 32, 3, 2, 0, status="failed")
    results = collect_test_result(cfg)
    assert results["failed_jobs"] == [{"task": "RTE", "job": "lr5e-05_bs32_ep3_seed2", "tree": "",
                                       "error": "CUDA out of memory",
                                       "log": "finetune/RTE/lr5e-05_bs32_ep3_seed2/job.log"}]
    assert ("- RTE `lr5e-05_bs32_ep3_seed2`: CUDA out of memory (log: `finetune/RTE/lr5e-05_bs32_ep3_seed2/job.log`)"
            in _report(cfg))
    assert "## Failed jobs" in _report(cfg) and results["tasks"]["RTE"]["config"]["learning_rate"] == 3e-5


def test_missing_task_refuses_the_zip_but_reports_what_is_missing(tmp_path):
    cfg = make_full_run(tmp_path)
    shutil.rmtree(layout.finetune_dir(cfg) / "RTE")
    with pytest.raises(DataError, match=r"RTE\.tsv \(no completed RTE job\).*ALLOW_PARTIAL"):
        collect_test_result(cfg)
    report = _report(cfg)
    assert "PARTIAL: average over 8 of 9 columns" in report and "missing: RTE" in report
    assert "NOT comparable to a full GLUE score" in report
    assert "Not written: glue_submission.zip not written" in report and "Tasks without results: RTE: no jobs" in report
    assert not (layout.run_dir(cfg) / "glue_submission.zip").exists()
    assert not result_collection_status(cfg).complete


def test_allow_partial_completes_and_the_report_lists_the_missing_files(tmp_path):
    cfg = make_full_run(tmp_path, **{"RESULT_COLLECTION.ALLOW_PARTIAL": True})
    collect_test_result(cfg)
    assert (layout.run_dir(cfg) / "results" / "WNLI.md").is_file()
    shutil.rmtree(layout.finetune_dir(cfg) / "WNLI")
    assert not result_collection_status(cfg).complete
    results = collect_test_result(cfg)
    assert not (layout.run_dir(cfg) / "results" / "WNLI.md").exists()  # no stale table of a task that is gone
    assert results["glue_score"]["complete"]  # WNLI is not part of the score
    assert results["submission"]["written"] and list(results["submission"]["missing"]) == ["WNLI"]
    with zipfile.ZipFile(layout.run_dir(cfg) / "glue_submission.zip") as archive:
        assert "WNLI.tsv" not in archive.namelist() and len(archive.namelist()) == 10
    assert "- missing WNLI.tsv: no completed WNLI job" in _report(cfg)
    assert result_collection_status(cfg).complete


def test_demo_tasks_are_labelled_as_demo_not_glue(tmp_path):
    cfg = make_full_run(tmp_path)
    demo = {"tasks": {"CoLA": {"name": "odd-length", "rule": "1 when the sentence has an odd number of words"},
                      "SST-2": {"name": "has-digit", "rule": "1 when the sentence holds a digit"}},
            "note": "Synthetic tasks made from the corpus."}
    (tmp_path / "glue" / "demo_tasks.json").write_text(json.dumps(demo))
    results = collect_test_result(cfg)
    report = _report(cfg)
    assert "**These are demo tasks, not GLUE.**" in report and "Synthetic tasks made from the corpus." in report
    assert "| CoLA | odd-length | 1 when the sentence has an odd number of words |" in report
    assert "## Demo score (demo tasks, NOT GLUE)" in report and "## GLUE score" not in report
    assert "**Demo score (demo tasks, NOT GLUE) (dev):" in report
    assert "| CoLA (demo: odd-length) | mcc |" in report
    assert "do not upload it to gluebenchmark.com" in report
    assert results["demo"]["tasks"]["SST-2"]["name"] == "has-digit"
    assert "CoLA (demo: odd-length)" in (layout.run_dir(cfg) / "results/CoLA.md").read_text()
    # A malformed file is reported by the config check, naming the file.
    (tmp_path / "glue" / "demo_tasks.json").write_text("[1, 2]")
    assert any("demo_tasks.json" in problem for problem in validate_config(cfg))


def test_random_init_baseline_is_compared_with_the_pretrained_model(tmp_path):
    cfg = make_full_run(tmp_path)
    random_root = layout.run_dir(cfg) / "finetune_random_init"
    write_all_tasks(random_root, tasks=("RTE", "CoLA"), base=0.5)
    results = collect_test_result(cfg)
    rte = results["random_init"]["tasks"]["RTE"]
    assert rte["pretrained"] == pytest.approx(0.825) and rte["random_init"] == pytest.approx(0.511)
    assert rte["difference"] == pytest.approx(0.314)
    report = _report(cfg)
    assert "## Pretrained vs random initialisation" in report
    assert "| RTE | accuracy | 82.50 | 51.10 | +31.40 |" in report
    assert "| SST-2 | accuracy | 81.30 | not run |  |" in report
    assert (layout.run_dir(cfg) / "results/RTE_random_init.md").is_file()


def test_report_says_when_there_was_no_pretraining(tmp_path):
    cfg = make_cfg(tmp_path, **{"PRETRAIN.ENABLED": False, "FINETUNE.MODEL_NAME_OR_PATH": "/models/bert"})
    write_glue_test_files(cfg.FINETUNE.GLUE_DIR)
    write_all_tasks(layout.finetune_dir(cfg))
    results = collect_test_result(cfg)
    assert not results["pretraining"]["available"]
    assert "pretraining was disabled (PRETRAIN.ENABLED is False)" in _report(cfg)
    assert "/models/bert" in _report(cfg)
    assert list(results["plots"]) == ["seed_spread"]


def test_no_finetune_jobs_is_an_error_naming_the_folder(tmp_path):
    cfg = make_cfg(tmp_path)
    with pytest.raises(DataError, match=r"no finetune jobs under .*finetune: run the finetune stage first"):
        collect_test_result(cfg)


def test_validate_config_reports_a_missing_glue_dir_and_unknown_tasks(tmp_path):
    cfg = make_cfg(tmp_path, **{"FINETUNE.ENABLED": False, "FINETUNE.TASKS": ["CoLA", "GLUEX"]})
    problems = validate_config(cfg)
    assert any(p.startswith("FINETUNE.GLUE_DIR: folder does not exist") for p in problems)
    assert any("FINETUNE.TASKS" in p and "GLUEX" in p for p in problems)
    assert validate_config(make_cfg(tmp_path, **{"RESULT_COLLECTION.ENABLED": False})) == []


def test_jobs_outside_the_configured_search_are_left_out(tmp_path, capsys):
    cfg = make_full_run(tmp_path)
    # An earlier grid's job (batch size 16 is not in the search) that would otherwise win CoLA, and a task that is
    # no longer listed.
    write_job(layout.finetune_dir(cfg), "CoLA", 3e-5, 16, 3, 1, 0.99)
    narrowed = make_cfg(tmp_path, **{"FINETUNE.TASKS": [t for t in cfg.FINETUNE.TASKS if t != "WNLI"],
                                     "RESULT_COLLECTION.ALLOW_PARTIAL": True})
    results = collect_test_result(narrowed)
    assert results["tasks"]["CoLA"]["config"]["batch_size"] == 32
    assert "WNLI" not in results["tasks"]
    assert "lr3e-05_bs16_ep3_seed1" not in (layout.run_dir(cfg) / "results/CoLA.md").read_text()
    assert "note: 7 job folder(s) under" in capsys.readouterr().out  # the CoLA job and WNLI's 2 configs x 3 seeds

