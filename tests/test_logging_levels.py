"""What the console and a stage's log show at each level: main.py's --quiet and --verbose, SYSTEM.LOG_LEVEL, and a
script's --quiet. The stand-in stage logs a line at each level and takes a filelock (a library that logs at DEBUG)."""
import main
from dataset import shard_data
from tests.runner_test_stages import LEVELED, WITH_FAILURE, config_opts

DEBUG_LINE, INFO_LINE, WARNING_LINE = "stand-in debug line", "stand-in info line", "warning: stand-in warning line"
LIBRARY_DEBUG = "debug: filelock: Attempting to acquire lock"


def _main(tmp_path, capsys, *args, opts=(), stages=LEVELED):
    config = tmp_path / "empty.yaml"
    config.write_text("")
    code = main.main(["--config", str(config), *args, "--opts", *config_opts(tmp_path, *opts)], stages=stages)
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def _log(tmp_path, stage="leveled") -> str:
    return next((tmp_path / "out" / "runs").glob(f"*/logs/{stage}.log")).read_text()


def test_the_console_shows_info_and_the_stage_log_keeps_each_debug_line_once(tmp_path, capsys):
    code, out, err = _main(tmp_path, capsys)
    assert code == 0 and err == ""
    assert INFO_LINE in out and WARNING_LINE in out and "== stage leveled" in out and "Pipeline finished" in out
    assert DEBUG_LINE not in out and "filelock" not in out
    log = _log(tmp_path)
    assert log.count(f"debug: {DEBUG_LINE}") == 1 and log.count(INFO_LINE) == 1 and log.count(WARNING_LINE) == 1
    assert "filelock" not in log  # the libraries' debug output only with --verbose


def test_quiet_prints_only_warnings_errors_and_the_final_summary(tmp_path, capsys):
    code, out, err = _main(tmp_path, capsys, "--quiet")
    assert code == 0 and err == ""
    lines = [line for line in out.splitlines() if line]
    assert len(lines) == 2 and lines[0] == WARNING_LINE and lines[1].startswith("Pipeline finished. Run folder: "), out
    log = _log(tmp_path)  # the log keeps what the console left out, once
    assert log.count(f"debug: {DEBUG_LINE}") == 1 and log.count(INFO_LINE) == 1 and log.count(WARNING_LINE) == 1
    assert "leveled: wrote" in log


def test_verbose_adds_the_debug_lines_and_the_libraries_and_overrides_the_setting(tmp_path, capsys):
    code, out, _ = _main(tmp_path, capsys, "--verbose", opts=("SYSTEM.LOG_LEVEL", "WARNING"))
    assert code == 0
    assert f"debug: {DEBUG_LINE}" in out and INFO_LINE in out and LIBRARY_DEBUG in out
    assert "LOG_LEVEL: DEBUG" in next((tmp_path / "out" / "runs").glob("*/config.yaml")).read_text()


def test_the_setting_alone_quiets_the_console(tmp_path, capsys):
    code, out, _ = _main(tmp_path, capsys, opts=("SYSTEM.LOG_LEVEL", "WARNING"))
    assert code == 0 and WARNING_LINE in out and INFO_LINE not in out and "Plan:" not in out


def test_a_failed_stage_under_quiet_still_shows_its_error_line_and_the_failed_summary(tmp_path, capsys):
    code, out, err = _main(tmp_path, capsys, "--quiet", stages=WITH_FAILURE)
    assert code == 1
    assert "error: the corpus folder /nowhere is empty" in out and "FAILED: stage 'failing'" in err
    assert "== stage" not in out and "first: wrote" not in out
    assert "first: wrote" in _log(tmp_path, "first")


def test_a_script_under_quiet_prints_its_warnings_and_its_result_line_only(tmp_path, capfd):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("One plain article of text.\n\nAnother one, also plain.\n")
    (corpus / "photo.txt").write_bytes(bytes(range(128, 256)) * 20)  # not UTF-8: a warning under replace
    args = ["--num_train_shards", "1", "--num_test_shards", "1", "--frac_test", "0.5", "--encoding_errors",
            "replace", "--dataset", "custom", str(corpus)]
    assert shard_data.main(["--output_dir", str(tmp_path / "loud"), *args]) == 0
    loud = capfd.readouterr()
    assert "routing articles" in loud.err  # the progress bar
    assert shard_data.main(["--output_dir", str(tmp_path / "quiet"), "--quiet", *args]) == 0
    quiet = capfd.readouterr()
    assert len(quiet.err.splitlines()) == 1 and quiet.err.startswith(f"warning: {corpus / 'photo.txt'}: ")
    assert quiet.out == loud.out.replace(str(tmp_path / "loud"), str(tmp_path / "quiet"))  # the result line alone
    assert quiet.out.count("\n") == 1 and " text shards, " in quiet.out


def test_every_product_package_logs_its_info_lines_bare():
    """A package left out of OWN_LOGGERS prints 'info: <logger>: ...' (the publish stage once did)."""
    import logging
    from pathlib import Path

    from pipeline.log_setup import OWN_LOGGERS, LineFormatter

    root = Path(main.__file__).parent
    packages = {p.parent.name for p in root.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert packages <= set(OWN_LOGGERS)
    record = logging.LogRecord("publishing.stage", logging.INFO, __file__, 1, "uploaded", None, None)
    assert LineFormatter().format(record) == "uploaded"
