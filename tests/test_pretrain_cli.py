"""The script as users run it: the flags of the seed paper, one-line errors, and a 2-process run under the
DeepSpeed launcher on CPU (gloo)."""
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pretraining.arguments import build_parser, parse_arguments
from pretraining.metrics_log import read_metrics
from tests.pretrain_fixtures import REPO_ROOT, child_env, make_dataset, pretrain_argv, write_tokenizer

# The launch line of 24h-BERT/ExtremeBERT's README (paths replaced), flag for flag.
SEED_PAPER_FLAGS = """--model_type bert-mlm --tokenizer_name TOK --hidden_act gelu --hidden_size 1024
 --num_hidden_layers 24 --num_attention_heads 16 --intermediate_size 4096 --hidden_dropout_prob 0.1
 --attention_probs_dropout_prob 0.1
 --encoder_ln_mode pre-ln --lr 1e-3 --train_batch_size 4096 --train_micro_batch_size_per_gpu 32 --lr_schedule time
 --curve linear --warmup_proportion 0.06 --gradient_clipping 0.0 --optimizer_type adamw --weight_decay 0.01
 --adam_beta1 0.9 --adam_beta2 0.98 --adam_eps 1e-6 --total_training_time 24.0 --early_exit_time_marker 24.0
 --dataset_path DATA --output_dir OUT --print_steps 100 --num_epochs_between_checkpoints 10000
 --job_name pretraining_experiment --project_name budget-bert-pretraining --validation_epochs 3
 --validation_epochs_begin 1 --validation_epochs_end 1 --validation_begin_proportion 0.05
 --validation_end_proportion 0.01 --validation_micro_batch 16 --deepspeed --data_loader_type dist --do_validation
 --use_early_stopping --early_stop_time 180 --early_stop_eval_loss 6 --seed 42 --fp16""".split()


def test_the_seed_papers_command_line_is_accepted_with_a_note_per_flag_that_does_not_apply(capsys):
    cfg, paths = parse_arguments(SEED_PAPER_FLAGS + ["--local_rank", "0"])
    p = cfg.PRETRAIN
    assert (p.PRECISION, p.SCHEDULE_BASIS, p.SCHEDULER, p.LOG_EVERY_STEPS) == ("fp16", "time", "linear", 100)
    assert (cfg.MODEL.HIDDEN_SIZE, p.EARLY_STOP_EVAL_LOSS, p.VALIDATION_MICRO_BATCH) == (1024, 6.0, 16)
    assert (p.EARLY_EXIT_HOURS, cfg.PRETRAIN.ID, cfg.WANDB.PROJECT) == (24.0, "pretraining_experiment",
                                                                         "budget-bert-pretraining")
    assert (str(paths.samples_dir), str(paths.output_dir), paths.tokenizer) == ("DATA", "OUT", "TOK")
    notes = capsys.readouterr().err.splitlines()
    assert "warning: --num_epochs_between_checkpoints has no effect here: checkpoints are written every" \
           " --checkpoint_every_steps; rerunning the same command resumes from OUTPUT_DIR/checkpoints" in notes
    assert len(notes) == 10 and all(line.startswith("warning: --") for line in notes)


# academic-budget-bert's run_pretraining.py flags (pretraining/args/*.py) that have no setting here, with the
# "--no_" forms its HfArgumentParser makes for switches that default to on.
ORIGINAL_SWITCHES = """--deepspeed_transformer_kernel --stochastic_mode --attention_dropout_checkpoint
 --normalize_invertible --gelu_checkpoint --wall_clock_breakdown --prescale_gradients --bias_correction --add_nsp
 --finetune_checkpoint_at_end --no_finetune_checkpoint_at_end --no_fused_linear_layer --no_sparse_mask_prediction
 --no_async_worker""".split()
ORIGINAL_VALUED = """--steps_per_print 100 --gradient_predivide_factor 2 --config_name bert --cache_dir /tmp/hf
 --pretrain_run_args x --type_vocab_size 2 --initializer_range 0.02 --max_coeff 0.3 --min_coeff 0.01
 --scale_cnt_limit 100""".split()


def test_original_flags_without_a_setting_here_are_accepted_with_a_note_each(capsys):
    cfg, _ = parse_arguments(["--dataset_path", "d", "--output_dir", "o", "--tokenizer_name", "t",
                              *ORIGINAL_SWITCHES, *ORIGINAL_VALUED])
    notes = capsys.readouterr().err.splitlines()
    given = ORIGINAL_SWITCHES + ORIGINAL_VALUED[::2]
    assert [line.split()[1] for line in notes] == given and all(" has no effect here: " in line for line in notes)
    assert "warning: --scale_cnt_limit has no effect here: fp16 stops after --min_loss_scale_steps overflowing steps" \
           in notes
    plain, _ = parse_arguments(["--dataset_path", "d", "--output_dir", "o", "--tokenizer_name", "t"])
    assert cfg.dump() == plain.dump()  # noted, and nothing else: no setting changed


def test_help_says_which_flags_do_not_apply():
    text = " ".join(build_parser().format_help().split())
    for flag in ("--num_epochs_between_checkpoints", "--validation_epochs", "--max_seq_length", "--deepspeed_config"):
        assert re.search(re.escape(flag) + r" X\s+not applicable", text) or f"{flag} not applicable" in text, flag


def test_conflicting_precision_flags_are_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(["--dataset_path", "d", "--output_dir", "o", "--tokenizer_name", "t", "--fp16", "--bf16"])
    assert exit_info.value.code == 2
    assert "--bf16 contradicts --fp16: give at most one of them" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return {"tokenizer": write_tokenizer(root / "tokenizer"), "dynamic": make_dataset(root / "dynamic", "dynamic")}


def test_bad_input_ends_the_script_with_a_one_line_error(tiny, tmp_path):
    result = subprocess.run([sys.executable, "pretraining/run_pretraining.py",
                             *pretrain_argv(tmp_path / "no_such_folder", tmp_path / "out", tiny["tokenizer"])],
                            cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: dataset path does not exist")
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_two_processes_under_the_deepspeed_launcher_train_on_different_samples(tiny, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2", "--master_port", str(port),
               "pretraining/run_pretraining.py",
               *pretrain_argv(tiny["dynamic"], out, tiny["tokenizer"], max_steps=6, train_batch_size=8,
                              train_micro_batch_size_per_gpu=2, print_steps=3, validation_every_steps=0,
                              checkpoint_every_steps=3)]
    result = subprocess.run(command, cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    digests = dict(re.findall(r"rank (\d)/2: first training batch of this run ([0-9a-f]{12})", result.stdout))
    assert set(digests) == {"0", "1"} and digests["0"] != digests["1"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["steps"] == 6
    assert manifest["tokens_seen"] == 6 * 8 * 32  # 8 samples per step = 2 per micro-batch x 2 ranks x 2 accumulation
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r] == [3, 6]
    assert (out / "final_model" / "model.safetensors").is_file()
    # DeepSpeed's CPU all-reduce files in /dev/shm (66 MiB of RAM each) are gone with the run
    assert not list(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_{os.getuid()}_*_{port}_*"))


@pytest.mark.parametrize("bad", [["--optimizer_type", "lamb"], ["--no_such_flag", "1"], ["--lr", "fast"]])
def test_a_wrong_flag_is_one_line_and_exit_2_before_torch_is_imported(bad):
    result = subprocess.run([sys.executable, "pretraining/run_pretraining.py", "--dataset_path", "d", *bad],
                            cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run_pretraining.py: error: ") and "(see --help)" in lines[0]


def test_every_choice_of_the_optimizer_setting_builds_an_optimizer():
    from pipeline.defaults import SETTINGS_BY_KEY
    from pretraining.engine import OPTIMIZERS

    assert set(SETTINGS_BY_KEY["PRETRAIN.OPTIMIZER"].choices) == set(OPTIMIZERS)
