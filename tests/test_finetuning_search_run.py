"""The search as a user lives it: a console line per job start and end with [k/N], the dev metric, the time and an
ETA; a periodic line inside a long job; a failed job retried once, then recorded with its log's last lines; the
stage failing only for a task without any completed job; a killed job resuming from its checkpoint; wandb runs."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finetuning.search_progress import ProgressFile, JobWatcher, SearchProgress, format_duration, training_time
from finetuning.search_plan import PlannedJob as Job
from pipeline import layout
from pipeline.tensorboard_log import read_scalars
from tests.test_finetuning_fixtures import finetune_config, write_glue, write_tiny_model

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tiny_bert"))


def _child_env():
    return dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="disabled", OMP_NUM_THREADS="1",
                PYTHONUNBUFFERED="1")


def test_durations_read_at_a_glance():
    assert [format_duration(s) for s in (4.6, 192, 7500, 3 * 86400 + 4 * 3600)] == ["5s", "3m12s", "2h05m", "3d04h"]


def test_a_running_job_reports_step_speed_and_eta_from_its_progress_file(tmp_path):
    path = tmp_path / "progress.json"
    progress = ProgressFile(path, total_steps=120, first_step=20)  # resumed at step 20
    progress.started -= 10  # ten seconds of training so far
    progress.written -= 10
    progress.update(50)
    lines = []
    watcher = JobWatcher(path, "[3/7] RTE lr=1e-05 bs=16 ep=3 seed=42", every_s=60, started=1000.0,
                         log=lambda line, flush: lines.append(line))
    assert watcher.poll(1030.0) is None  # not yet a minute since the job's start line
    assert watcher.poll(1060.0) == "[3/7] RTE lr=1e-05 bs=16 ep=3 seed=42 step 50/120 (42%), 3.00 steps/s, training" \
                                   " ETA 23s"
    assert watcher.poll(1100.0) is None and watcher.poll(1120.0) == lines[0]  # a line a minute, not more
    assert len(lines) == 2
    assert JobWatcher(tmp_path / "absent.json", "x", every_s=1, started=0).poll(5.0) is None
    assert JobWatcher(path, "x", every_s=0, started=0).poll(1e9) is None  # 0 = no periodic lines


def test_search_eta_uses_each_tasks_own_speed_once_it_has_one():
    mrpc = [(Job("MRPC", 1e-5, 16, 3, seed), False) for seed in (1, 2)]
    sst = [(Job("SST-2", 1e-5, 16, 3, seed), False) for seed in (1, 2)]
    progress = SearchProgress({**{key: 100 for key in mrpc}, **{key: 1000 for key in sst}})
    assert progress.prefix(mrpc[0]) == "[1/4] MRPC lr=1e-05 bs=16 ep=3 seed=1"
    assert progress.summary() == "search: 0/4 jobs finished, ETA after the first job"
    progress.finish(mrpc[0], 50.0)  # 0.5 s per row-epoch: the only speed known, so SST-2 is guessed with it
    assert progress.eta() == pytest.approx(100 * 0.5 + 2000 * 0.5)
    progress.finish(sst[0], 100.0)  # SST-2's own rows are shorter: 0.1 s per row-epoch
    assert progress.eta() == pytest.approx(100 * 0.5 + 1000 * 0.1)
    assert progress.summary() == "search: 2/4 jobs finished, ETA 2m30s"
    progress.finish(mrpc[1], None)  # skipped (another process ran it): finished, no time of this run
    assert progress.eta() == pytest.approx(1000 * 0.1)


def test_the_search_eta_counts_start_up_once_per_job_and_training_per_row():
    """A first job of 100 row-epochs that took 50 s, 40 s of them before its first step and after its last: a job
    of 1000 row-epochs takes 40 + 1000 x 0.1 s, not 1000 x 0.5 s as the per-row rate of the whole time would say."""
    small, big = (Job("RTE", 1e-5, 16, 3, 1), False), (Job("RTE", 1e-5, 16, 3, 2), False)
    progress = SearchProgress({small: 100, big: 1000})
    progress.finish(small, 50.0, training=(10.0, 1.0))
    assert progress.eta() == pytest.approx(40 + 1000 * 0.1)
    resumed, left = (Job("QNLI", 1e-5, 16, 3, 1), False), (Job("QNLI", 1e-5, 16, 3, 2), False)
    progress.add({resumed: 400, left: 400})
    progress.finish(resumed, 30.0, training=(20.0, 0.5))  # trained its second half only: 200 row-epochs in 20 s
    assert progress.eta() == pytest.approx(1000 * 0.1 + 40 + 10 + 400 * 0.1)


def test_a_finished_jobs_progress_file_gives_its_training_time_and_the_share_it_trained():
    record = {"step": 120, "total_steps": 120, "steps_per_s": 3.0, "updated_at": 1030.0, "started_at": 1000.0,
              "first_step": 30}
    assert training_time(record) == (30.0, 0.75)
    assert training_time({**record, "step": 119}) is None  # training did not finish
    assert training_time(None) is None and training_time({"step": 5, "total_steps": 5}) is None  # no file, old file


def _write_yaml(path: Path, settings: dict) -> Path:
    path.write_text("".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items()), encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_search_through_main_py_shows_each_job_retries_a_failure_once_and_reports_it(tmp_path, model):
    glue = write_glue(tmp_path / "glue", tasks=["RTE"])
    config = _write_yaml(tmp_path / "search.yaml", {
        "INSTALL": {"ENABLED": False}, "DATASET": {"ENABLED": False}, "PRETRAIN": {"ENABLED": False},
        "SYSTEM": {"OUTPUT_ROOT": str(tmp_path / "out"), "NUM_GPUS": 0},
        # numpy refuses a seed of 2**32: that job fails in its child process, every time
        "FINETUNE": {"MODEL_NAME_OR_PATH": str(model), "GLUE_DIR": str(glue), "TASKS": ["RTE"], "SEEDS": [1, 2 ** 32],
                     "MAX_SEQ_LENGTH": 32, "STILT": {"ENABLED": False},
                     "SEARCH": {"SMALL": {"LEARNING_RATES": [1e-3], "BATCH_SIZES": [8], "EPOCHS": [1]}}},
        "RESULT_COLLECTION": {"ALLOW_PARTIAL": True, "WRITE_SUBMISSION": False, "WRITE_PLOTS": False}})
    result = subprocess.run([sys.executable, str(REPO_ROOT / "main.py"), "--config", str(config)], cwd=tmp_path,
                            env=_child_env(), capture_output=True, text=True, timeout=600)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr  # RTE has a completed configuration
    lines = out.splitlines()
    assert "finetune: 2 of 2 jobs to run (RTE)" in lines
    good, bad = "[1/2] RTE lr=0.001 bs=8 ep=1 seed=1", "[2/2] RTE lr=0.001 bs=8 ep=1 seed=4294967296"
    assert f"{good} started" in lines
    assert any(re.fullmatch(rf"{re.escape(good)} done: accuracy \d\.\d{{4}} in \d+s; search: 1/2 jobs finished,"
                            r" ETA \w+", line) for line in lines), out
    assert f"{bad} started" in lines and f"{bad} started (attempt 2 of 2)" in lines
    retried = next(line for line in lines if line.startswith(f"warning: {bad} failed after"))
    assert "ValueError: Seed must be between 0 and 2**32 - 1" in retried and retried.endswith("running it again")
    failed_at = next(i for i, line in enumerate(lines) if line.startswith(f"warning: {bad} FAILED after"))
    tail = lines[failed_at + 1:failed_at + 16]
    assert tail[0].startswith("    | ") and tail[-1] == "    | ValueError: Seed must be between 0 and 2**32 - 1"
    assert f"{bad} recorded as failed; search: 2/2 jobs finished" in lines
    job = layout.run_dir(_loaded(config)) / "finetune" / "RTE" / "lr0.001_bs8_ep1_seed4294967296"
    assert json.loads((job / "job.json").read_text())["status"] == "failed"
    report = (layout.run_dir(_loaded(config)) / "report.md").read_text()
    assert "## Failed jobs" in report
    assert "- RTE `lr0.001_bs8_ep1_seed4294967296`: exit code 1: ValueError: Seed must be between" in report


def _loaded(config: Path):
    from orchestration.stages import load_config

    return load_config(str(config), [])


@pytest.mark.slow
def test_with_wandb_enabled_each_job_is_one_offline_run_in_its_tasks_group(tmp_path, model, monkeypatch):
    from finetuning.stage import finetune

    monkeypatch.setenv("WANDB_MODE", "offline")
    glue = write_glue(tmp_path / "glue", tasks=["WNLI"])
    cfg = finetune_config(tmp_path, model, glue, **{"FINETUNE.TASKS": "[WNLI]", "WANDB.ENABLED": True,
                                                     "WANDB.MODE": "offline", "WANDB.PROJECT": "search-test"})
    finetune(cfg)
    job = layout.finetune_dir(cfg) / "WNLI" / "lr0.001_bs8_ep1_seed1"
    assert "--report_to wandb tensorboard --run_name WNLI/lr0.001_bs8_ep1_seed1" in (job / "job.log").read_text()
    runs = list((job / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    recorded = runs[0].read_bytes()  # the run's records: project and group as wandb stores them
    assert f"{cfg.PRETRAIN.ID}/finetune/WNLI".encode() in recorded and b"search-test" in recorded


@pytest.mark.slow
def test_a_job_killed_mid_way_resumes_from_its_checkpoint_on_the_next_run(tmp_path, model, capsys):
    from finetuning.stage import finetune, finetune_status

    glue = write_glue(tmp_path / "glue", tasks=["MRPC"], n_train=160)
    overrides = {"FINETUNE.TASKS": "[MRPC]", "FINETUNE.STILT.ENABLED": False, "FINETUNE.SAVE_STEPS": 20,
                 "FINETUNE.SEARCH.SMALL.EPOCHS": "[4]"}  # 80 steps, a checkpoint every 20
    cfg = finetune_config(tmp_path, model, glue, **overrides)
    config = tmp_path / "resolved.yaml"
    config.write_text(cfg.dump(), encoding="utf-8")
    job = layout.finetune_dir(cfg) / "MRPC" / "lr0.001_bs8_ep4_seed1"
    stage = subprocess.Popen([sys.executable, "-c", "import sys; from orchestration.stages import load_config; from"
                              " finetuning.stage import finetune; finetune(load_config(sys.argv[1], []))",
                              str(config)], cwd=REPO_ROOT, env=_child_env(), start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not list(job.glob("checkpoint-*")) and stage.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(stage.pid, signal.SIGKILL)  # the stage and its job child, as a power cut would
    stage.wait()
    assert json.loads((job / "job.json").read_text())["status"] == "running" and not (job / "eval_results.json").exists()
    newest = max(int(p.name.split("-")[1]) for p in job.glob("checkpoint-*"))

    finetune(cfg)
    out = capsys.readouterr().out
    assert f"[1/1] MRPC lr=0.001 bs=8 ep=4 seed=1 started, resuming from checkpoint-{newest}" in out
    log = (job / "job.log").read_text()
    assert log.count("# ") >= 2 and f"resuming from {job / f'checkpoint-{newest}'} at step {newest}/80" in log
    assert json.loads((job / "job.json").read_text())["status"] == "completed"
    assert not list(job.glob("checkpoint-*")) and not (job / "progress.json").exists()  # a finished job keeps none
    assert finetune_status(cfg).complete
    # Its TensorBoard run: the resumed process's event file continues the killed one's, with no step twice.
    scalars = read_scalars(layout.tensorboard_dir(cfg) / "finetune" / "MRPC" / "lr0.001_bs8_ep4_seed1")
    assert [step for step, _ in scalars["train/loss"]] == list(range(8, 81, 8))  # --logging_steps 0.1 of 80 steps
    assert [step for step, _ in scalars["eval/accuracy"]] == [80]  # the final evaluation


def test_the_papers_search_settings_reach_run_glue_and_enter_a_jobs_record_only_when_changed(tmp_path):
    from finetuning.arguments import finalize, parse_args
    from finetuning.job_record import job_settings
    from finetuning.search_scheduler import job_arguments

    paper = {"FINETUNE.WEIGHT_DECAY": 0.1, "FINETUNE.PRECISION": "fp32", "FINETUNE.SEEDS": "[42]",
             "FINETUNE.WARMUP_STEPS": 50, "FINETUNE.MAX_GRAD_NORM": 0.5, "FINETUNE.GRADIENT_ACCUMULATION_STEPS": 2,
             "FINETUNE.EVAL_BATCH_SIZE": 16, "FINETUNE.SAVE_STEPS": 0}
    cfg = finetune_config(tmp_path, tmp_path, "", **paper)
    job = Job("RTE", 5e-5, 32, 3, 42)
    job_dir = layout.finetune_dir(cfg) / "RTE" / job.name
    model_args, data_args, args, notes = parse_args(job_arguments(cfg, job, job_dir, "m", False, False, 1)[1:])
    finalize(model_args, data_args, args, gpu_available=False)
    assert (args.weight_decay, args.precision, args.seed, args.warmup_steps, args.max_grad_norm) == (
        0.1, "fp32", 42, 50, 0.5)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (16, 2)  # 32 rows per step
    assert (args.per_device_eval_batch_size, args.save_strategy, args.overwrite_output_dir) == (16, "no", True)
    assert args.progress_file == str(job_dir / "progress.json") and args.report_to == ["tensorboard"]
    assert args.logging_dir == str(layout.run_dir(cfg) / "tensorboard" / "finetune" / "RTE" / job.name)
    record = job_settings(cfg, False)
    assert (record["warmup_steps"], record["max_grad_norm"], record["gradient_accumulation_steps"]) == (50, 0.5, 2)
    defaults = job_settings(finetune_config(tmp_path, tmp_path, ""), False)
    assert not {"warmup_steps", "max_grad_norm", "gradient_accumulation_steps"} & set(defaults)  # old jobs still count
    resumed = job_arguments(finetune_config(tmp_path, tmp_path, ""), job, job_dir, "m", False, False, 1,
                             resume=True)
    assert "--overwrite_output_dir" not in resumed
    assert resumed[resumed.index("--save_steps") + 1] == "2000" and "--save_total_limit" in resumed


def test_a_stilt_source_configuration_outside_the_grid_or_an_uneven_accumulation_is_a_config_error(tmp_path):
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        finetune_config(tmp_path, tmp_path, "", **{"FINETUNE.TASKS": "[MNLI, RTE]",
                                                   "FINETUNE.STILT.SOURCE_CONFIG": "[5.0e-5, 32, 3]"})
    assert info.value.problems == ["FINETUNE.STILT.SOURCE_CONFIG = [5e-05, 32, 3] is not a [learning rate, batch size,"
                                   " epochs] of the MNLI grid ([0.001, 8, 1]); use one of those, or [] for the best"]
    cfg = finetune_config(tmp_path, tmp_path, "", **{"FINETUNE.TASKS": "[MNLI, RTE]",
                                                     "FINETUNE.STILT.SOURCE_CONFIG": "[1.0e-3, 8, 1]"})
    assert list(cfg.FINETUNE.STILT.SOURCE_CONFIG) == [1e-3, 8, 1]
    with pytest.raises(ConfigError) as info:
        finetune_config(tmp_path, tmp_path, "", **{"FINETUNE.GRADIENT_ACCUMULATION_STEPS": 3})
    assert info.value.problems == ["FINETUNE: batch size 8 is not divisible by GRADIENT_ACCUMULATION_STEPS 3 (each GPU"
                                   " and each accumulated batch takes an equal share)"]


def test_each_table_flag_of_run_glue_carries_its_setting_from_the_stage(tmp_path):
    """The stage's command line for a job, parsed by run_glue.py, holds every FINETUNE setting the table gives a
    run_glue.py flag, at a value other than run_glue.py's default."""
    from finetuning.arguments import TABLE_FLAGS, finalize, parse_args
    from finetuning.search_scheduler import job_arguments

    changed = {"FINETUNE.GLUE_DIR": str(tmp_path / "glue"), "FINETUNE.MALFORMED_ROWS": "skip",
               "FINETUNE.MAX_SEQ_LENGTH": 64, "FINETUNE.WEIGHT_DECAY": 0.2, "FINETUNE.WARMUP_RATIO": 0.1, "FINETUNE.LR_SCHEDULER": "cosine",
               "FINETUNE.PRECISION": "bf16", "FINETUNE.GROUP_BY_LENGTH": True, "FINETUNE.MAX_TRAIN_SAMPLES": 5,
               "FINETUNE.MAX_EVAL_SAMPLES": 6, "FINETUNE.WARMUP_STEPS": 7, "FINETUNE.MAX_GRAD_NORM": 0.5,
               "FINETUNE.GRADIENT_ACCUMULATION_STEPS": 2, "FINETUNE.EVAL_BATCH_SIZE": 9}
    assert set(changed) == {setting.key for setting in TABLE_FLAGS.values()}
    (tmp_path / "glue").mkdir()
    cfg = finetune_config(tmp_path, tmp_path, "", **changed, **{"FINETUNE.TASKS": "[]", "FINETUNE.ENABLED": False})
    parsed = parse_args(job_arguments(cfg, Job("RTE", 5e-5, 8, 3, 42), tmp_path / "job", "m", False, False, 1)[1:])
    finalize(*parsed[:3], gpu_available=False)
    for name, setting in TABLE_FLAGS.items():
        value = next(getattr(group, name) for group in parsed[:3] if hasattr(group, name))
        assert value == changed[setting.key], name
