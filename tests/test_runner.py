"""The stage runner: order, skipping complete stages, --force, failure handling and logging."""
from pathlib import Path

from orchestration.runner import format_plan, forced_stages, plan, run_pipeline
from orchestration.stages import load_config
from tests.runner_test_stages import TWO_STAGES, WITH_FAILURE, WITH_READER, config_opts


def _config(tmp_path, *opts):
    return load_config(None, config_opts(tmp_path, *opts))


def _calls(cfg):
    log = Path(cfg.SYSTEM.OUTPUT_ROOT) / "calls.log"
    return log.read_text().split() if log.exists() else []


def test_runs_stages_in_order_then_skips_them_when_complete(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert run_pipeline(cfg, stages=TWO_STAGES) == 0
    assert _calls(cfg) == ["first", "second"]
    assert run_pipeline(cfg, stages=TWO_STAGES) == 0
    assert _calls(cfg) == ["first", "second"]  # nothing reran
    assert "[skip] first" in capsys.readouterr().out


def test_stage_output_goes_to_console_and_to_its_log_file(tmp_path, capsys):
    cfg = _config(tmp_path)
    run_pipeline(cfg, stages=TWO_STAGES)
    log = Path(cfg.SYSTEM.OUTPUT_ROOT) / "runs" / cfg.PRETRAIN.ID / "logs" / "first.log"
    assert "first: wrote" in log.read_text()
    assert "first: wrote" in capsys.readouterr().out


def test_changed_settings_make_a_stage_incomplete(tmp_path):
    cfg = _config(tmp_path)
    run_pipeline(cfg, stages=TWO_STAGES)
    changed = _config(tmp_path, "SYSTEM.SEED", "7")
    assert [action for _, action, _ in plan(changed, stages=TWO_STAGES)] == ["run", "run"]


def test_deleted_output_makes_a_stage_incomplete(tmp_path):
    cfg = _config(tmp_path)
    run_pipeline(cfg, stages=TWO_STAGES)
    (Path(cfg.SYSTEM.OUTPUT_ROOT) / "second" / "output.txt").unlink()
    assert [action for _, action, _ in plan(cfg, stages=TWO_STAGES)] == ["skip", "run"]


def test_a_stage_planned_as_complete_is_asked_again_after_an_earlier_stage_rewrote_its_input(tmp_path, capsys):
    cfg = _config(tmp_path)
    run_pipeline(cfg, stages=WITH_READER)
    (Path(cfg.SYSTEM.OUTPUT_ROOT) / "first" / "manifest.json").unlink()  # "first" must run again, "reader" not yet
    assert [action for _, action, _ in plan(cfg, stages=WITH_READER)] == ["run", "skip"]
    capsys.readouterr()
    assert run_pipeline(cfg, stages=WITH_READER) == 0
    assert _calls(cfg) == ["first", "reader", "first", "reader"]
    assert "[run] reader: settings changed since the last run (after the stages above ran)" in capsys.readouterr().out
    assert run_pipeline(cfg, stages=WITH_READER) == 0
    assert _calls(cfg) == ["first", "reader", "first", "reader"]  # and then both are complete


def test_force_redoes_the_stage_and_every_later_one(tmp_path):
    cfg = _config(tmp_path)
    run_pipeline(cfg, stages=TWO_STAGES)
    assert forced_stages(["first"], TWO_STAGES) == {"first", "second"}
    assert run_pipeline(cfg, force=["second"], stages=TWO_STAGES) == 0
    assert _calls(cfg) == ["first", "second", "second"]
    assert run_pipeline(cfg, force=["first"], stages=TWO_STAGES) == 0
    assert _calls(cfg) == ["first", "second", "second", "first", "second"]


def test_disabled_stage_is_not_run(tmp_path):
    cfg = _config(tmp_path, "PRETRAIN.ENABLED", "False")
    assert run_pipeline(cfg, stages=TWO_STAGES) == 0
    assert _calls(cfg) == ["first"]
    assert "[disabled] second" in format_plan(plan(cfg, stages=TWO_STAGES))


def test_failing_stage_stops_the_pipeline_with_its_name_and_log(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert run_pipeline(cfg, stages=WITH_FAILURE) == 1
    assert _calls(cfg) == ["first"]  # the stage after the failure never ran
    err = capsys.readouterr().err
    assert "stage 'failing'" in err and "failing.log" in err
    log = Path(cfg.SYSTEM.OUTPUT_ROOT) / "runs" / cfg.PRETRAIN.ID / "logs" / "failing.log"
    assert "the corpus folder /nowhere is empty" in log.read_text()
    assert not (Path(cfg.SYSTEM.OUTPUT_ROOT) / "failing" / "manifest.json").exists()
