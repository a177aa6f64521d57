"""Taking a run further and starting from existing weights, in this process (one rank, gloo, CPU): a finished run
raised from N to 2N steps, the pipeline's view of a raised horizon, and a second phase at a longer sequence length
that starts from the first phase's final_model."""
import json

import pytest
import torch
from safetensors.torch import load_file

from pipeline import layout
from pipeline.manifest import write_manifest
from pipeline.run_ids import horizon
from pretraining.arguments import parse_arguments
from pretraining.metrics_log import read_metrics
from pretraining.schedulers import lr_multiplier
from pretraining.stage import pretrain_status, stage_settings
from scripts.result_collection import collect_test_result
from tests.pretrain_fixtures import checkpoint_contents, make_dataset, pretrain_argv, write_tokenizer
from tests.test_pretrain_stage import tiny_config
from tests.test_pretrain_training import tiny  # noqa: F401 (a fixture; one_rank_group comes from conftest)
from tests.test_result_helpers import make_full_run


def train_run(dataset, out, tokenizer, **flags):
    from pretraining.trainer import train

    return train(*parse_arguments(pretrain_argv(dataset, out, tokenizer, **flags)))


def logged_rates(out) -> dict:
    return {row["step"]: row["lr"] for row in read_metrics(out / "metrics.jsonl") if "lr" in row}


def test_a_finished_run_raised_from_n_to_2n_steps_continues_and_ends_where_a_2n_run_does(one_rank_group, tiny,
                                                                                           tmp_path, capsys):
    flags = dict(lr=3e-3, curve="esd", warmup_proportion=0.1, print_steps=2, validation_every_steps=0,
                 checkpoint_every_steps=5)
    raised, straight = tmp_path / "raised", tmp_path / "straight"
    first = train_run(tiny["dynamic"], raised, tiny["tokenizer"], max_steps=10, **flags)
    assert first["steps"] == 10 and first["horizon"]["NUM_STEPS"] == 10
    continued = train_run(tiny["dynamic"], raised, tiny["tokenizer"], max_steps=20, **flags)
    train_run(tiny["dynamic"], straight, tiny["tokenizer"], max_steps=20, **flags)

    assert "resumed from step 10" in capsys.readouterr().out
    assert continued["steps"] == 20 and continued["horizon"]["NUM_STEPS"] == 20
    a, b = checkpoint_contents(raised, 20)["train_state"], checkpoint_contents(straight, 20)["train_state"]
    assert (a["step"], a["samples_consumed"], a["micro_batches"]) == (b["step"], b["samples_consumed"],
                                                                     b["micro_batches"])
    # From step 10 on, the rate is the 20-step schedule's, as in a 20-step run resumed at step 10 (which follows the
    # uninterrupted run exactly: test_pretrain_training's SIGKILL test): ESD recomputed on the new horizon from the
    # current step, the documented rule.
    rates, reference = logged_rates(raised), logged_rates(straight)
    assert sorted(rates) == list(range(2, 21, 2))  # the first run's lines up to step 10 are kept, once
    for step in range(12, 21, 2):
        expected = 3e-3 * lr_multiplier(min(1.0, (step + 1) / 20), "esd", 0.1)
        assert rates[step] == pytest.approx(expected) and reference[step] == pytest.approx(expected), step
    assert rates[10] == pytest.approx(0.0)  # the first run's own end: its 10-step schedule had run out


def test_raising_the_horizon_keeps_the_run_id_and_makes_the_stage_incomplete(tmp_path):
    cfg = tiny_config(tmp_path, prepare_samples=True)
    raised = tiny_config(tmp_path, "PRETRAIN.NUM_STEPS", "12", "PRETRAIN.TOTAL_TRAINING_HOURS", "48")
    assert raised.PRETRAIN.ID == cfg.PRETRAIN.ID and stage_settings(raised) == stage_settings(cfg)
    other = tiny_config(tmp_path, "PRETRAIN.LEARNING_RATE", "0.002")
    assert other.PRETRAIN.ID != cfg.PRETRAIN.ID  # anything else still makes a new run

    final = layout.final_model_dir(cfg)
    final.mkdir(parents=True)
    (final / "config.json").write_text("{}")
    (final / "model.safetensors").write_bytes(b"")
    write_manifest(layout.pretrain_dir(cfg), "pretrain", stage_settings(cfg), steps=6, horizon=horizon(cfg))
    assert pretrain_status(cfg).complete
    status = pretrain_status(raised)
    assert not status.complete
    assert status.detail == ("horizon raised (NUM_STEPS 6 -> 12, TOTAL_TRAINING_HOURS 24.0 -> 48.0): rerunning"
                             " continues from the newest checkpoint")
    lowered = tiny_config(tmp_path, "PRETRAIN.NUM_STEPS", "3")
    assert pretrain_status(lowered).complete  # a model trained further than asked is not trained back


def test_phase_two_at_a_longer_sequence_starts_from_phase_one_and_trains_the_new_positions(one_rank_group, tmp_path):
    tokenizer = write_tokenizer(tmp_path / "tokenizer")
    short, long = make_dataset(tmp_path / "seq16", seq_length=16), make_dataset(tmp_path / "seq32", seq_length=32)
    common = dict(max_position_embeddings=32, validation_every_steps=0, warmup_proportion=0.0, curve="constant")
    phase1 = tmp_path / "phase1"
    first = train_run(short, phase1, tokenizer, max_steps=40, lr=1e-2, **common)
    phase2 = tmp_path / "phase2"
    second = train_run(long, phase2, None, model_name_or_path=phase1 / "final_model", max_steps=10, lr=3e-3,
                       **common)
    assert second["steps"] == 10

    # Step 0 of phase 2 is validated before any update: phase 1's model on the 32-token data, far below the
    # ln(46) = 3.8 of a fresh model.
    val = [row for row in read_metrics(phase2 / "metrics.jsonl") if "val_loss" in row]
    assert val[0]["step"] == 0 and val[0]["val_loss"] < 3.5 and first["final_val_loss"] < 3.5
    name = "roberta_prelayernorm.embeddings.position_embeddings.weight"
    before, after = (load_file(folder / "final_model" / "model.safetensors")[name] for folder in (phase1, phase2))
    offset = 1  # pad id 0: one zero row in front of the exported table (see pretraining/export_stock.py)
    moved = (after - before).norm(dim=1)[offset:]
    assert torch.all(moved[16:] > 0.2 * moved[:16].mean()), moved  # positions 16..31: trained in phase 2


def test_the_report_of_a_second_phase_says_where_it_started_and_its_loss_at_step_0(tmp_path):
    cfg = make_full_run(tmp_path, **{"PRETRAIN.INIT_FROM": "/runs/phase1/pretrain/final_model"})
    metrics = layout.pretrain_dir(cfg) / "metrics.jsonl"
    metrics.write_text(json.dumps({"step": 0, "val_loss": 2.75, "elapsed_s": 0.5}) + "\n" + metrics.read_text())
    collect_test_result(cfg)
    report = (layout.run_dir(cfg) / "report.md").read_text()
    assert "| started from (PRETRAIN.INIT_FROM) | `/runs/phase1/pretrain/final_model` |" in report
    assert "| validation loss at step 0 | 2.7500 |" in report and "| final validation loss | 5.5000 |" in report
