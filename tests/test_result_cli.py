"""The three result-collection scripts run alone (as a user runs them) on a fabricated run folder."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipeline import layout
from tests.test_result_helpers import make_full_run

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run(script, *args):
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / script), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    cfg = make_full_run(tmp_path_factory.mktemp("cli"))
    run_dir = layout.run_dir(cfg)
    (run_dir / "config.yaml").write_text(cfg.dump(), encoding="utf-8")  # as the pipeline runner writes it
    return run_dir


def test_summarize_val_prints_and_writes_every_task_table(run_dir):
    result = _run("summarize_val.py", "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr
    assert "## MNLI" in result.stdout and "| lr3e-05_bs32_ep3_seed3 |" in result.stdout
    assert (run_dir / "results" / "MNLI.csv").read_text().startswith("job,learning_rate,batch_size,epochs,seed,")


def test_collect_best_val_prints_bests_and_the_glue_score_given_the_readmes_run_dir_flag(run_dir):
    result = _run("collect_best_val.py", "--run_dir", run_dir)
    assert result.returncode == 0, result.stderr
    assert "RTE    accuracy  median  82.50 over 3 seeds" in result.stdout
    assert "GLUE score (dev): " in result.stdout and "(average of all 9)" in result.stdout


def test_translate_test_result_writes_the_zip_and_refuses_missing_tasks(run_dir, tmp_path):
    result = _run("translate_test_result.py", "--run-dir", run_dir, "--output", tmp_path / "sub.zip")
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(tmp_path / "sub.zip") as archive:
        assert len(archive.namelist()) == 11 and "AX.tsv" in archive.namelist()
    # Point the run at tasks it lacks by moving a task folder away: the script refuses with one error line.
    moved = run_dir / "finetune" / "CoLA"
    moved.rename(tmp_path / "CoLA")
    try:
        refused = _run("translate_test_result.py", "--run-dir", run_dir, "--output", tmp_path / "partial.zip")
        assert refused.returncode == 1
        assert refused.stderr.startswith("error: glue_submission.zip not written") and "CoLA.tsv" in refused.stderr
        allowed = _run("translate_test_result.py", "--run-dir", run_dir, "--output", tmp_path / "partial.zip",
                       "--allow-partial")
        assert allowed.returncode == 0 and "PARTIAL, missing: CoLA" in allowed.stdout
    finally:
        (tmp_path / "CoLA").rename(moved)


def test_a_folder_without_config_is_a_one_line_config_error(tmp_path):
    result = _run("collect_best_val.py", "--run-dir", tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: --run-dir") and "config.yaml" in result.stderr


def test_an_unknown_key_in_opts_exits_2_as_in_main(run_dir, capsys):
    from scripts.collect_best_val import main

    assert main(["--run-dir", str(run_dir), "--opts", "RESULT_COLLECTION.WRITE_PLOT", "False"]) == 2
    assert capsys.readouterr().err.splitlines() == ["error: unknown config key RESULT_COLLECTION.WRITE_PLOT (did you"
                                                    " mean RESULT_COLLECTION.WRITE_PLOTS?)"]
