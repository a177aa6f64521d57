"""The training loop, in this process (one rank, gloo, CPU): step counting with gradient accumulation, the
schedule, validation, checkpoints, the time budget, SIGTERM, resume rules, the exported model, bad input."""
import json
import os
import re
import signal
import threading
import time

import pytest

from pipeline.errors import ConfigError, DataError
from pretraining.arguments import parse_arguments
from pretraining.checkpointing import latest_tag
from pipeline.tensorboard_log import read_scalars
from pretraining.metrics_log import TENSORBOARD_TAGS, read_metrics
from pretraining.schedulers import lr_multiplier
from tests.pretrain_fixtures import (REPO_ROOT, checkpoint_contents, child_env, make_dataset, pretrain_argv,
                                     write_dynamic, write_tokenizer)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {"tokenizer": write_tokenizer(root / "tokenizer"), "dynamic": make_dataset(root / "dynamic", "dynamic"),
            "static": make_dataset(root / "static", "static"), "packed": make_dataset(root / "packed", "packed"),
            "root": root}


def run(tiny, out, data="dynamic", **flags):
    from pretraining.trainer import train

    return train(*parse_arguments(pretrain_argv(tiny[data], out, tiny["tokenizer"], **flags)))


def test_steps_count_optimizer_updates_with_gradient_accumulation_and_the_loss_falls(one_rank_group, tiny, tmp_path,
                                                                                      capsys):
    out = tmp_path / "run"
    manifest = run(tiny, out, max_steps=30, lr=1e-2, train_batch_size=8, train_micro_batch_size_per_gpu=4,
                   num_checkpoints_to_keep=2)
    assert manifest["steps"] == 30 and manifest["stop_reason"] == "max_steps"
    state = checkpoint_contents(out, 30)["train_state"]
    assert state["micro_batches"] == 60  # 8 = 4 per micro-batch x 2 accumulation steps
    assert state["samples_consumed"] == 240 and manifest["tokens_seen"] == 30 * 8 * 32
    # Keep-last-2: the periodic checkpoint of step 10 is gone, 20 and the final 30 remain.
    assert sorted(p.name for p in (out / "checkpoints").glob("step*")) == ["step00000020", "step00000030"]
    assert latest_tag(out / "checkpoints") == "step00000030"

    rows = read_metrics(out / "metrics.jsonl")
    train_rows = [r for r in rows if "loss" in r]
    val_rows = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in train_rows] == [5, 10, 15, 20, 25, 30]
    assert [r["step"] for r in val_rows] == [10, 20, 30]
    assert set(train_rows[0]) >= {"step", "loss", "lr", "samples_per_s", "tokens_per_s", "loss_scale", "elapsed_s"}
    assert "mfu" not in train_rows[0]  # CPU: no known peak
    assert all(0 < r["real_tokens_per_s"] <= r["tokens_per_s"] for r in train_rows)  # padding is not counted
    # The logged rate is the one the next step uses: peak x schedule((step + 1) / max_steps).
    for r in train_rows:
        assert r["lr"] == pytest.approx(1e-2 * lr_multiplier(min(1.0, (r["step"] + 1) / 30), "linear", 0.1))
    assert val_rows[-1]["val_loss"] < train_rows[0]["loss"] - 0.3
    assert manifest["final_val_loss"] == pytest.approx(val_rows[-1]["val_loss"])
    assert (out / "training_curves.png").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "rank 0/1: first training batch" in printed
    assert re.search(r"^step 5/30 \|.* \| ETA \d+s \(steps\)$", printed, re.MULTILINE), printed

    # The TensorBoard event files (default SYSTEM.TENSORBOARD) hold the same numbers, read back as TensorBoard does.
    scalars = read_scalars(out / "tensorboard")
    for key, tag in TENSORBOARD_TAGS.items():
        logged = [(r["step"], r[key]) for r in (val_rows if key == "val_loss" else train_rows) if key in r]
        assert [step for step, _ in scalars.get(tag, [])] == [step for step, _ in logged], tag
        assert [value for _, value in scalars.get(tag, [])] == pytest.approx([value for _, value in logged]), tag
    assert {"train/loss", "eval/loss", "train/learning_rate", "train/real_tokens_per_s", "train/samples_per_s",
            "train/loss_scale"} <= set(scalars)


def test_rerunning_a_finished_run_resumes_at_its_end(one_rank_group, tiny, tmp_path):
    out = tmp_path / "run"
    first = run(tiny, out, max_steps=6, validation_every_steps=0)
    again = run(tiny, out, max_steps=6, validation_every_steps=0)
    assert again["steps"] == first["steps"] == 6
    assert again["final_val_loss"] == pytest.approx(first["final_val_loss"])
    assert len([r for r in read_metrics(out / "metrics.jsonl") if "loss" in r]) == 1  # step 5, logged once


class _RunsCodeWhenUnpickled:
    """A stand-in for a hostile checkpoint: unpickling it creates the folder ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _plant_pickles(checkpoint, marker) -> None:
    import pickle

    for path in checkpoint.glob("*.pt"):
        path.write_bytes(pickle.dumps(_RunsCodeWhenUnpickled(marker)))


def test_a_checkpoint_of_another_run_is_refused_before_its_pickles_are_opened(one_rank_group, tiny, tmp_path):
    out = tmp_path / "run"
    run(tiny, out, max_steps=3)
    checkpoint = out / "checkpoints" / "step00000003"
    signature = json.loads((checkpoint / "signature.json").read_text())
    assert signature["step"] == 3 and signature["signature"]["PRETRAIN.LEARNING_RATE"] == 0.003
    _plant_pickles(checkpoint, tmp_path / "pwned")
    with pytest.raises(ConfigError, match="holds checkpoints of a different run .*PRETRAIN.LEARNING_RATE: 0.003 -> 0.001"):
        run(tiny, out, max_steps=3, lr=1e-3)
    assert not (tmp_path / "pwned").exists()


def test_a_checkpoint_without_a_signature_file_is_refused_in_one_line(one_rank_group, tiny, tmp_path):
    out = tmp_path / "run"
    run(tiny, out, max_steps=3)
    checkpoint = out / "checkpoints" / "step00000003"
    (checkpoint / "signature.json").unlink()  # as an older version, or another program, leaves it
    _plant_pickles(checkpoint, tmp_path / "pwned")
    with pytest.raises(ConfigError) as info:
        run(tiny, out, max_steps=3)
    assert str(info.value) == (f"checkpoint {checkpoint} has no signature.json, so nothing says this run wrote it (an"
                               f" older ExtremeBERT, or another program did), and loading its pickles can run any code"
                               f" they hold; delete {out / 'checkpoints'} to start over, or give this run a folder of"
                               f" its own (another PRETRAIN.ID through main.py; another --output_dir for"
                               f" run_pretraining.py)")
    assert not (tmp_path / "pwned").exists()


def test_sigterm_saves_a_checkpoint_at_the_current_step_and_stops(one_rank_group, tiny, tmp_path):
    from pretraining.trainer import Interrupted

    out = tmp_path / "run"

    def terminate_once_training_runs():
        while not read_metrics(out / "metrics.jsonl"):  # the first line is written at step 5
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_once_training_runs, daemon=True).start()
    with pytest.raises(Interrupted, match="rerun the same command"):
        run(tiny, out, max_steps=100000, checkpoint_every_steps=100000, validation_every_steps=0)
    step = int(latest_tag(out / "checkpoints")[4:])  # no periodic checkpoint before step 100000: this is SIGTERM's
    assert step >= 5 and checkpoint_contents(out, step)["train_state"]["step"] == step
    assert not (out / "manifest.json").exists() and not (out / "final_model").exists()


def test_time_budget_ends_the_run_by_its_end_including_validation_and_saving(one_rank_group, tiny, tmp_path):
    """On an idle CPU the run ends within 1% of the budget (the end-of-run costs are predicted with a margin); the
    bounds here are loose because a loaded machine stretches any one step or validation: they catch a budget that
    is ignored or that stops the run at once, not the last percent."""
    budget_h = 0.01  # 36 s
    manifest = run(tiny, tmp_path / "run", data="static", lr_schedule="time", total_training_time=budget_h,
                   max_steps=10 ** 6, validation_every_steps=50, checkpoint_every_steps=200, print_steps=50)
    assert manifest["stop_reason"] == "time_budget"
    assert 0.8 * budget_h <= manifest["hours"] <= 1.5 * budget_h, manifest["hours"] * 3600


def test_the_eta_is_that_of_the_steps_left_or_of_the_time_budget_whichever_ends_the_run_first():
    from pretraining.budget import TimeBudget

    budget = TimeBudget(3600.0, batch_size=8, validation_samples=0, validation_every=100, checkpoint_every=250)
    for kind, seconds in (("validation", 4.0), ("checkpoint", 10.0), ("export", 2.0), ("plot", 1.0)):
        budget.costs.record(kind, seconds)
    end_of_run = 1.2 * (10.0 + 4.0 + 2.0 + 1.0)
    # step 500 of 1000 at 0.5 s a step: 250 s of steps, validations at 600..1000, checkpoints at 750 and 1000
    assert budget.eta(100.0, 500, 1000, 0.5) == (pytest.approx(250 + 5 * 4.0 + 2 * 10.0 + end_of_run), "steps")
    assert budget.eta(100.0, 500, 1000, 10.0) == (3500.0, "time budget")  # 5000 s of steps left, 3500 s of budget
    assert budget.eta(3700.0, 999, 1000, 10.0) == (0.0, "time budget")


def test_bad_batch_sizes_and_foreign_data_fail_before_training(one_rank_group, tiny, tmp_path):
    with pytest.raises(ConfigError, match="--train_batch_size 10 is not divisible by"):
        run(tiny, tmp_path / "a", train_batch_size=10, train_micro_batch_size_per_gpu=4)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    write_dynamic(foreign / "train_0.hdf5", vocab_size=30522)
    with pytest.raises(DataError, match="vocabulary of 30522 tokens but the tokenizer has 46"):
        run({**tiny, "foreign": foreign}, tmp_path / "b", data="foreign")
    with pytest.raises(DataError, match="dataset path does not exist"):
        run({**tiny, "missing": tmp_path / "missing"}, tmp_path / "c", data="missing")
    assert not any((tmp_path / name).exists() for name in "abc")  # nothing was started


def test_static_data_trains_and_the_final_model_loads_with_the_auto_classes(one_rank_group, tiny, tmp_path):
    import torch
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "run"
    manifest = run(tiny, out, data="static", max_steps=4, precision="bf16")
    assert manifest["precision"] == "bf16" and manifest["steps"] == 4
    final = out / "final_model"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in final.iterdir()}
    model = AutoModelForMaskedLM.from_pretrained(final)
    tokenizer = AutoTokenizer.from_pretrained(final)
    batch = tokenizer(["w1 w2 [MASK] w4"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], len(tokenizer))
    # The export holds DeepSpeed's fp32 master weights, not the bf16 copies the forward pass used.
    state = checkpoint_contents(out, 4)["module"]
    assert state["encoder.embeddings.word.weight"].dtype == torch.bfloat16
    exported = model.state_dict()["roberta_prelayernorm.embeddings.word_embeddings.weight"]
    assert exported.dtype == torch.float32 and not torch.equal(exported, exported.bfloat16().float())
    assert AutoModelForSequenceClassification.from_pretrained(final, num_labels=3).num_labels == 3


def test_a_run_killed_with_sigkill_resumes_and_ends_with_the_weights_of_an_uninterrupted_run(one_rank_group, tiny,
                                                                                               tmp_path):
    """On rows packed across documents (DATASET.PACKING's default, full_sentences), dynamically masked."""
    import subprocess
    import sys

    import torch

    flags = dict(max_steps=150, checkpoint_every_steps=20, validation_every_steps=50, print_steps=10,
                 hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)  # dropout on: its masks must resume too
    killed = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "pretraining/run_pretraining.py",
                              *pretrain_argv(tiny["packed"], killed, tiny["tokenizer"], **flags)],
                             cwd=REPO_ROOT, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while (latest_tag(killed / "checkpoints") or "step0")[4:] < "00000040" and child.poll() is None:
            time.sleep(0.02)
    finally:
        child.kill()
    assert child.wait() == -signal.SIGKILL, child.stderr.read().decode()[-2000:]
    assert not (killed / "manifest.json").exists()

    resumed = run(tiny, killed, data="packed", **flags)
    baseline = run(tiny, tmp_path / "baseline", data="packed", **flags)
    assert resumed["steps"] == baseline["steps"] == 150
    assert resumed["final_val_loss"] == pytest.approx(baseline["final_val_loss"], abs=1e-5)
    a, b = checkpoint_contents(killed, 150), checkpoint_contents(tmp_path / "baseline", 150)
    assert a["train_state"]["samples_consumed"] == b["train_state"]["samples_consumed"]
    for name, tensor in b["module"].items():
        torch.testing.assert_close(a["module"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    steps = [r["step"] for r in read_metrics(killed / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(10, 151, 10))  # lines after the last checkpoint were rewritten, not duplicated
    assert len(list((killed / "tensorboard").glob("events.out.tfevents.*"))) == 2  # the resumed run's file added
    assert [step for step, _ in read_scalars(killed / "tensorboard")["train/loss"]] == steps


def test_early_stopping_rules_end_a_failing_run_without_marking_it_done(one_rank_group, tiny, tmp_path):
    from pretraining.loop import TrainingStopped

    with pytest.raises(TrainingStopped, match="early stop: validation loss .* > --early_stop_eval_loss 0.5"):
        run(tiny, tmp_path / "threshold", early_stop_time=0, early_stop_eval_loss=0.5)
    with pytest.raises(TrainingStopped, match="training diverged"):
        run(tiny, tmp_path / "nan", lr=1e30, warmup_proportion=0, curve="constant", max_steps=50)
    assert not any((tmp_path / name / "manifest.json").exists() for name in ("threshold", "nan"))


def test_wandb_offline_mode_logs_without_a_network(one_rank_group, tiny, tmp_path):
    out = tmp_path / "run"
    run(tiny, out, max_steps=5, wandb=True, wandb_mode="offline", validation_every_steps=0, **{"no-tensorboard": True})
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))
    assert not (out / "tensorboard").exists()  # --no-tensorboard


def test_the_original_schedule_flags_drive_the_logged_rates(one_rank_group, tiny, tmp_path):
    """--lr_schedule constant_step with --num_warmup_steps, an original decay curve with its parameter, and
    --gradient_accumulation_steps agreeing with the batch split: the rate each logged step reports is the one the
    schedule's formula gives."""
    out = tmp_path / "run"
    manifest = run(tiny, out, max_steps=20, lr=2e-3, lr_schedule="constant_step", num_warmup_steps=4, curve="poly",
                   poly_power=2.0, gradient_accumulation_steps=2, train_batch_size=8, train_micro_batch_size_per_gpu=4,
                   print_steps=2, validation_every_steps=0)
    assert manifest["steps"] == 20 and checkpoint_contents(out, 20)["train_state"]["micro_batches"] == 40
    for row in (r for r in read_metrics(out / "metrics.jsonl") if "lr" in r):
        progress = min(1.0, (row["step"] + 1) / 20)
        expected = 2e-3 * (progress / 0.2 if progress < 0.2 else (1 - (progress - 0.2) / 0.8) ** 2)
        assert row["lr"] == pytest.approx(expected), row["step"]
    with pytest.raises(ConfigError, match="--gradient_accumulation_steps 3 contradicts"):
        run(tiny, tmp_path / "bad", gradient_accumulation_steps=3, train_batch_size=8, train_micro_batch_size_per_gpu=4)


def test_a_folder_holding_only_vocab_txt_is_a_tokenizer_the_script_trains_with(one_rank_group, tiny, tmp_path):
    vocab_only = tmp_path / "vocab"
    vocab_only.mkdir()
    (vocab_only / "vocab.txt").write_text((tiny["tokenizer"] / "vocab.txt").read_text())
    from pretraining.trainer import train

    manifest = train(*parse_arguments(pretrain_argv(tiny["dynamic"], tmp_path / "run", vocab_only, max_steps=3,
                                                    validation_every_steps=0)))
    assert manifest["steps"] == 3
    final = tmp_path / "run" / "final_model"
    assert (final / "tokenizer.json").is_file() or (final / "vocab.txt").is_file()


def test_a_zero_checkpoint_names_how_many_processes_wrote_it_when_their_number_changes(tmp_path):
    from pretraining.checkpointing import check_world_size

    for rank in (0, 1):
        (tmp_path / f"bf16_zero_pp_rank_{rank}_mp_rank_00_optim_states.pt").touch()
    check_world_size(tmp_path, zero_stage=1, world_size=2)
    with pytest.raises(ConfigError, match="written by 2 processes under ZeRO stage 1, .* resume it with 2 processes"):
        check_world_size(tmp_path, zero_stage=1, world_size=1)
    check_world_size(tmp_path / "a ZeRO-0 folder", zero_stage=0, world_size=1)
