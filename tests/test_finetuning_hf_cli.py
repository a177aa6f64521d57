"""run_glue.py speaks the Hugging Face TrainingArguments dialect: the ExtremeBERT paper's command verbatim, the HF
example's flags, one's own CSV/JSON data, checkpoints that a killed run resumes from, gradient accumulation, the
HF result files, and one-line answers to flags it does not know or cannot honour."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finetuning.run_glue import main
from tests.test_finetuning_fixtures import write_glue, write_tiny_model

REPO_ROOT = Path(__file__).resolve().parents[1]

# Appendix B.1.5 of the ExtremeBERT paper, with the model (M) and output folder (O) filled in per test.
PAPER_COMMAND = ("--model_name_or_path M --task_name MRPC --max_seq_length 128 --output_dir O --overwrite_output_dir"
                 " --do_train --do_eval --evaluation_strategy steps --per_device_train_batch_size 32"
                 " --gradient_accumulation_steps 1 --per_device_eval_batch_size 32 --learning_rate 5e-5"
                 " --weight_decay 0.01 --eval_steps 50 --max_grad_norm 1.0 --num_train_epochs 5"
                 " --lr_scheduler_type polynomial --warmup_steps 50")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    return write_glue(tmp_path_factory.mktemp("glue"), tasks=["MRPC"], n_train=48, n_dev=8)


def _quick(model, glue, out, *extra) -> list:
    return ["--model_name_or_path", str(model), "--task_name", "MRPC", "--data_dir", str(glue), "--output_dir",
            str(out), "--do_train", "--do_eval", "--max_seq_length", "32", "--per_device_train_batch_size", "8",
            "--learning_rate", "1e-3", *extra]


def _json(path):
    return json.loads(path.read_text())


def _notes(err: str) -> list:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def _error_line(err: str) -> str:
    """The one line a refused command prints (progress bars of the libraries may come before it)."""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


def _history(out, key):
    return [entry for entry in _json(out / "trainer_state.json")["log_history"] if key in entry]


@pytest.mark.slow
def test_the_paper_command_runs_verbatim_and_evaluates_every_eval_steps(tmp_path, model, capsys):
    from scripts.finetune_jobs import read_job

    glue = write_glue(tmp_path / "glue", tasks=["MRPC"], n_train=672, n_dev=8)  # 21 steps per epoch, 105 in all
    out = tmp_path / "out"
    argv = [{"M": str(model), "O": str(out)}.get(token, token) for token in PAPER_COMMAND.split()]
    assert main(argv + ["--data_dir", str(glue)]) == 0
    printed = capsys.readouterr()
    for step in (50, 100):
        assert f"dev at step {step}/105 (epoch" in printed.out
    assert "final dev at step 105/105" in printed.out
    assert _notes(printed.err) == []  # every flag of the command is honoured: no "no effect" note
    assert [entry["step"] for entry in _history(out, "eval_f1")] == [50, 100, 105]

    evaluation = _json(out / "eval_results.json")
    assert {"accuracy", "f1", "eval_loss", "eval_accuracy", "eval_f1", "eval_combined_score", "eval_samples",
            "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch"} == set(evaluation)
    assert evaluation["f1"] == evaluation["eval_f1"] and evaluation["eval_samples"] == 8
    train = _json(out / "train_results.json")
    assert set(train) == {"train_loss", "train_runtime", "train_samples", "train_samples_per_second",
                          "train_steps_per_second", "epoch"}
    assert train["train_samples"] == 672 and train["epoch"] == 5
    assert _json(out / "all_results.json") == {**train, **evaluation}
    assert read_job("MRPC", out).metrics["f1"] == evaluation["f1"]  # result collection reads the same file


def test_an_unknown_flag_is_one_line_and_exit_2(tmp_path, model, glue, capsys):
    with pytest.raises(SystemExit) as info:
        main(_quick(model, glue, tmp_path / "o", "--no_such_flag", "3"))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unrecognized arguments: --no_such_flag 3") and err.count("\n") == 1
    with pytest.raises(SystemExit) as info:
        main(_quick(model, glue, tmp_path / "o", "--eval_strategy", "sometimes"))
    assert info.value.code == 2 and capsys.readouterr().err.count("\n") == 1


def test_a_trainer_flag_without_effect_here_says_so_in_one_line_and_the_run_goes_on(tmp_path, model, glue, capsys):
    assert main(_quick(model, glue, tmp_path / "o", "--max_steps", "2", "--torch_compile", "--logging_dir", "logs",
                       "--report_to", "mlflow")) == 0
    notes = _notes(capsys.readouterr().err)
    assert len(notes) == 3 and all(line.startswith("warning: --") and "no effect" in line for line in notes)
    assert {line.split()[1] for line in notes} == {"--torch_compile", "--logging_dir", "--report_to"}


def test_push_to_hub_is_checked_before_any_work_in_one_line(tmp_path, model, glue, capsys):
    """--push_to_hub has an effect now: offline (this session's HF_HUB_OFFLINE=1) it stops before loading anything."""
    assert main(_quick(model, glue, tmp_path / "o", "--push_to_hub", "--hub_model_id", "someone/tiny")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "HF_HUB_OFFLINE=1" in err
    assert not (tmp_path / "o").exists()


def test_fp16_on_a_cpu_is_a_one_line_error_and_bf16_trains_with_autocast(tmp_path, model, glue, capsys):
    import torch

    from finetuning.train_loop import autocast_dtype

    if torch.cuda.is_available():
        pytest.skip("fp16 is refused only where no GPU is visible")
    assert main(_quick(model, glue, tmp_path / "fp16", "--fp16", "--max_steps", "2")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: fp16 needs a GPU") and err.count("\n") == 1
    assert not (tmp_path / "fp16").exists()  # refused before any work
    assert autocast_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert main(_quick(model, glue, tmp_path / "bf16", "--bf16", "--max_steps", "2")) == 0
    assert "precision bf16" in capsys.readouterr().out
    assert (tmp_path / "bf16" / "eval_results.json").is_file()


def test_eval_and_logging_strategies_and_warmup_steps_do_what_they_say(tmp_path, model, glue, capsys):
    out = tmp_path / "out"  # 48 rows at batch 8: 6 steps per epoch
    assert main(_quick(model, glue, out, "--num_train_epochs", "2", "--eval_strategy", "epoch", "--logging_steps",
                       "2", "--warmup_steps", "4", "--warmup_ratio", "0.5", "--lr_scheduler_type", "linear",
                       "--save_strategy", "no")) == 0
    assert "--warmup_ratio 0.5 has no effect: --warmup_steps 4 takes precedence" in capsys.readouterr().err
    assert [entry["step"] for entry in _history(out, "eval_accuracy")] == [6, 12]
    losses = _history(out, "loss")
    assert [entry["step"] for entry in losses] == [2, 4, 6, 8, 10, 12]
    assert losses[0]["learning_rate"] == pytest.approx(1e-3 * 2 / 4)  # halfway through the 4 warmup steps
    assert not list(out.glob("checkpoint-*"))


def test_gradient_accumulation_of_two_batches_of_8_trains_like_one_batch_of_16(tmp_path_factory):
    model = write_tiny_model(tmp_path_factory.mktemp("no_dropout"), dropout=0.0)  # the same steps give the same loss
    glue = write_glue(tmp_path_factory.mktemp("glue16"), tasks=["MRPC"], n_train=40, n_dev=8)
    runs = {}
    for name, batch, accumulation in (("batch16", "16", "1"), ("batch8x2", "8", "2")):
        out = tmp_path_factory.mktemp(name)
        assert main(["--model_name_or_path", str(model), "--task_name", "MRPC", "--data_dir", str(glue),
                     "--output_dir", str(out), "--do_train", "--do_eval", "--max_seq_length", "32",
                     "--per_device_train_batch_size", batch, "--gradient_accumulation_steps", accumulation,
                     "--learning_rate", "1e-3", "--num_train_epochs", "3", "--logging_steps", "1",
                     "--save_strategy", "no"]) == 0
        runs[name] = out
    curves = {name: [entry["loss"] for entry in _history(out, "loss")] for name, out in runs.items()}
    assert len(curves["batch16"]) == 9  # 40 rows: steps of 16, 16 and 8 rows, three epochs
    assert curves["batch8x2"] == pytest.approx(curves["batch16"], rel=1e-4)
    assert len(set(curves["batch16"])) > 1  # steps saw different rows and weights
    losses = [_json(out / "eval_results.json")["eval_loss"] for out in runs.values()]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def _write_rows(path, rows):
    if path.suffix == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")


def _own_rows(n, regression=False):
    words = ("good film", "bad plot", "the cat sat", "a sad story", "happy man ran", "slow movie")
    rows = []
    for i in range(n):
        label = round((i % 5) * 0.9, 1) if regression else ("yes", "no")[i % 2]
        rows.append({"idx": i, "text": words[i % len(words)], "label": label} if regression else
                    {"sentence1": words[i % len(words)], "sentence2": words[(i + 1) % len(words)], "label": label})
    return rows


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_train_and_validation_files_of_ones_own_classification_task(tmp_path, model, suffix):
    files = {}
    for split, n in (("train", 24), ("validation", 8), ("test", 5)):
        files[split] = tmp_path / f"{split}{suffix}"
        _write_rows(files[split], _own_rows(n))
    out = tmp_path / "out"
    assert main(["--model_name_or_path", str(model), "--train_file", str(files["train"]), "--validation_file",
                 str(files["validation"]), "--test_file", str(files["test"]), "--output_dir", str(out), "--do_train",
                 "--do_eval", "--do_predict", "--max_seq_length", "32", "--per_device_train_batch_size", "8",
                 "--num_train_epochs", "1"]) == 0
    evaluation = _json(out / "eval_results.json")
    assert {"accuracy", "eval_accuracy", "eval_loss", "eval_samples"} <= set(evaluation)
    assert evaluation["eval_samples"] == 8
    rows = (out / "predictions_test.tsv").read_text().splitlines()
    assert rows[0] == "index\tprediction" and len(rows) == 6
    assert {row.split("\t")[1] for row in rows[1:]} <= {"no", "yes"}  # the file's own label names


def test_float_labels_make_a_regression_task_on_the_first_text_column(tmp_path, model):
    train, dev = tmp_path / "train.json", tmp_path / "dev.json"
    _write_rows(train, _own_rows(24, regression=True))
    _write_rows(dev, _own_rows(8, regression=True))
    out = tmp_path / "out"
    assert main(["--model_name_or_path", str(model), "--train_file", str(train), "--validation_file", str(dev),
                 "--output_dir", str(out), "--do_train", "--do_eval", "--max_seq_length", "32",
                 "--per_device_train_batch_size", "8", "--num_train_epochs", "1"]) == 0
    evaluation = _json(out / "eval_results.json")
    assert {"mse", "pearson", "spearman", "eval_mse", "eval_pearson", "eval_spearmanr"} <= set(evaluation)


def test_own_data_problems_are_one_line_errors(tmp_path, model, capsys):
    train = tmp_path / "train.csv"
    train.write_text("sentence,score\na cat,1\n", encoding="utf-8")
    base = ["--model_name_or_path", str(model), "--output_dir", str(tmp_path / "o"), "--do_train"]
    assert main(base + ["--train_file", str(train)]) == 1
    assert _error_line(capsys.readouterr().err) == (f"error: {train}: no label column 'label' (columns: sentence,"
                                                    f" score); name it with LABEL_COLUMN (--label_column_name)")
    assert main(base + ["--do_eval", "--train_file", str(train)]) == 2
    assert "--validation_file" in capsys.readouterr().err


FINITE = ": give a finite number"


@pytest.mark.parametrize("flag, value, message", [
    ("--max_seq_length", "-5", "-5 is out of range [8, inf) (FINETUNE.MAX_SEQ_LENGTH)"),
    ("--learning_rate", "-1", "-1 is out of range (0, inf)"),
    ("--learning_rate", "inf", f"inf is out of range (0, inf){FINITE}"),
    ("--learning_rate", "nan", f"nan is out of range (0, inf){FINITE}"),
    ("--weight_decay", "-0.1", "-0.1 is out of range [0, inf) (FINETUNE.WEIGHT_DECAY)"),
    ("--num_train_epochs", "nan", f"nan is out of range [0, inf){FINITE}"),
    ("--per_device_train_batch_size", "0", "0 is out of range [1, inf)"),
    ("--warmup_steps", "inf", f"inf is out of range [0, inf) (FINETUNE.WARMUP_STEPS){FINITE}"),
    ("--adam_beta2", "1", "1 is out of range [0, 1)"),
    ("--adam_epsilon", "-0.1", "-0.1 is out of range [0, inf)"),
    ("--max_grad_norm", "nan", f"nan is out of range [0, inf) (FINETUNE.MAX_GRAD_NORM){FINITE}"),
    ("--eval_steps", "inf", f"inf is out of range (0, inf){FINITE}"),
])
def test_a_flag_out_of_its_range_is_one_line_and_exit_2_before_any_work(tmp_path, model, glue, capsys, flag, value,
                                                                          message):
    out = tmp_path / "o"
    assert main(_quick(model, glue, out, flag, value)) == 2
    assert capsys.readouterr().err == f"error: {flag} {message}\n"
    assert not out.exists()


def test_a_job_whose_loss_becomes_non_finite_fails_saying_it_diverged(tmp_path, model, glue, capsys):
    out = tmp_path / "o"
    assert main(_quick(model, glue, out, "--learning_rate", "1e30", "--max_steps", "4", "--save_strategy", "no")) == 1
    assert re.fullmatch(r"error: training diverged at step \d: the training loss is (nan|inf) \(learning rate"
                        r" 1e\+30\); try a lower learning rate \(--learning_rate\), or more warmup",
                        _error_line(capsys.readouterr().err))
    assert not (out / "eval_results.json").exists()


def test_a_row_longer_than_the_models_positions_is_cut_to_them(tmp_path, model, capsys):
    train, dev = tmp_path / "train.csv", tmp_path / "dev.csv"
    long_row = {"sentence1": " ".join(["cat"] * 200), "sentence2": "a dog", "label": "yes"}  # tiny model: 128
    for path in (train, dev):
        _write_rows(path, _own_rows(7) + [long_row])
    assert main(["--model_name_or_path", str(model), "--train_file", str(train), "--validation_file", str(dev),
                 "--output_dir", str(tmp_path / "o"), "--do_train", "--do_eval", "--max_seq_length", "1024",
                 "--per_device_train_batch_size", "8", "--max_steps", "1"]) == 0
    assert (f"warning: --max_seq_length 1024 exceeds the 128 positions of {model} (max_position_embeddings); using 128"
            in capsys.readouterr().err)


def test_checkpoints_are_hf_folders_pruned_to_the_limit_and_refuse_other_settings(tmp_path, model, glue, capsys):
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "out"

    def argv(learning_rate="1e-3"):
        return _quick(model, glue, out, "--max_steps", "12", "--save_steps", "3", "--save_total_limit", "2",
                      "--learning_rate", learning_rate)

    assert main(argv()) == 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-12", "checkpoint-9"]
    assert AutoModelForSequenceClassification.from_pretrained(out / "checkpoint-12").num_labels == 2
    capsys.readouterr()
    assert main(argv("2e-3")) == 2  # the same folder, another learning rate
    err = capsys.readouterr().err
    assert "checkpoint-12 was written by a run with other settings (learning_rate 0.001 there, 0.002 now)" in err
    assert err.count("\n") == 1  # refused before loading anything
    assert (out / "eval_results.json").is_file()  # and before touching the earlier results
    assert main(argv()) == 0  # the same command again resumes from the last checkpoint: nothing left to train
    assert "resuming from" in capsys.readouterr().out and (out / "eval_results.json").is_file()
    assert main(argv() + ["--overwrite_output_dir"]) == 0
    assert "removed checkpoint-12, checkpoint-9; training from scratch" in capsys.readouterr().out


def _run_glue(argv, **popen):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", WANDB_MODE="disabled")
    return subprocess.Popen([sys.executable, str(REPO_ROOT / "finetuning" / "run_glue.py"), *argv], env=env,
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_newest_checkpoint_to_the_uninterrupted_result(tmp_path, model):
    glue = write_glue(tmp_path / "glue", tasks=["MRPC"], n_train=160, n_dev=16)

    def argv(out):
        return _quick(model, glue, out, "--max_steps", "80", "--save_steps", "10", "--logging_steps", "5",
                      "--eval_strategy", "steps", "--eval_steps", "20", "--warmup_ratio", "0.1",
                      "--lr_scheduler_type", "polynomial", "--seed", "7")

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the children below (OMP_NUM_THREADS=1): the same float sums
    try:
        assert main(argv(whole)) == 0  # the uninterrupted reference, in this process: no second import of torch
    finally:
        torch.set_num_threads(threads)
    victim = _run_glue(argv(killed))
    deadline = time.time() + 240
    while not (killed / "checkpoint-10").is_dir() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL and not (killed / "eval_results.json").exists()
    newest = max(int(p.name.split("-")[1]) for p in killed.glob("checkpoint-*"))
    assert newest < 80

    rerun = _run_glue(argv(killed))
    output = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, output
    assert f"resuming from {killed / f'checkpoint-{newest}'} at step {newest}/80" in output
    for name in ("eval_loss", "accuracy", "f1"):
        assert _json(killed / "eval_results.json")[name] == pytest.approx(_json(whole / "eval_results.json")[name],
                                                                         rel=1e-6)
    for key in ("loss", "eval_loss"):  # the resumed log history is the uninterrupted one
        resumed, uninterrupted = _history(killed, key), _history(whole, key)
        assert [e["step"] for e in resumed] == [e["step"] for e in uninterrupted]
        assert [e[key] for e in resumed] == pytest.approx([e[key] for e in uninterrupted], rel=1e-6)


def test_every_flag_of_the_hf_example_parses(tmp_path):
    from finetuning.arguments import finalize, parse_args

    argv = ("--model_name_or_path m --config_name c --tokenizer_name t --cache_dir cache --use_fast_tokenizer false"
            " --model_revision v1 --token tok --trust_remote_code --ignore_mismatched_sizes --task_name mrpc"
            " --dataset_name d --dataset_config_name dc --max_seq_length 64 --overwrite_cache --pad_to_max_length"
            " --max_train_samples 10 --max_eval_samples 5 --max_predict_samples 3 --output_dir o --do_train --do_eval"
            " --do_predict --eval_strategy steps --eval_steps 0.25 --per_device_train_batch_size 4"
            " --per_device_eval_batch_size 4 --gradient_accumulation_steps 3 --learning_rate 2e-5 --weight_decay 0.1"
            " --adam_beta1 0.8 --adam_beta2 0.99 --adam_epsilon 1e-6 --max_grad_norm 0.5 --num_train_epochs 2"
            " --max_steps 100 --lr_scheduler_type cosine --lr_scheduler_kwargs {} --warmup_steps 0.1"
            " --logging_strategy epoch --logging_steps 10 --logging_first_step --save_strategy epoch --save_steps 20"
            " --save_total_limit 1 --seed 3 --data_seed 4 --bf16 --train_sampling_strategy group_by_length"
            " --report_to none --run_name r --use_cpu --optim adamw_torch").split()
    model_args, data_args, args, notes = parse_args(argv)
    assert notes == []
    assert finalize(model_args, data_args, args, gpu_available=False) == []
    assert (model_args.config_name, model_args.use_fast_tokenizer, model_args.trust_remote_code) == ("c", False, True)
    assert (data_args.max_predict_samples, data_args.pad_to_max_length, data_args.overwrite_cache) == (3, True, True)
    assert (args.eval_steps, args.gradient_accumulation_steps, args.precision, args.report_to) == (0.25, 3, "bf16", [])
    old = parse_args(["--model_name_or_path", "m", "--task_name", "rte", "--output_dir", "o", "--do_train",
                      "--evaluation_strategy", "epoch", "--warmup_ratio", "0.1", "--group_by_length", "--no_cuda",
                      "--overwrite_output_dir"])
    assert finalize(*old[:3], gpu_available=True) == []
    assert (old[2].eval_strategy, old[2].do_eval, old[2].train_sampling_strategy, old[2].use_cpu) == (
        "epoch", True, "group_by_length", True)


def test_report_to_wandb_runs_with_wandb_disabled_and_tensorboard_gets_the_loss_and_dev_metrics(tmp_path, model, glue,
                                                                                               capsys, monkeypatch):
    from pipeline.tensorboard_log import read_scalars

    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    out = tmp_path / "o"
    assert main(_quick(model, glue, out, "--max_steps", "4", "--logging_steps", "2", "--eval_strategy", "steps",
                       "--report_to", "wandb", "tensorboard")) == 0
    assert _notes(capsys.readouterr().err) == []
    (events,) = (out / "runs").iterdir()  # transformers' default folder: OUTPUT_DIR/runs/DATE_TIME_HOST
    scalars = read_scalars(events)
    history = _json(out / "trainer_state.json")["log_history"]
    for key, tag in (("loss", "train/loss"), ("learning_rate", "train/learning_rate"), ("eval_loss", "eval/loss"),
                     ("eval_accuracy", "eval/accuracy"), ("eval_f1", "eval/f1")):
        logged = [(entry["step"], entry[key]) for entry in history if key in entry]
        assert [step for step, _ in scalars[tag]] == [step for step, _ in logged] and logged, tag
        assert [value for _, value in scalars[tag]] == pytest.approx([value for _, value in logged], rel=1e-6), tag
    assert [step for step, _ in scalars["eval/accuracy"]] == [2, 4]  # during training, then the final evaluation


def test_dataset_name_reads_a_dataset_folder_with_train_and_validation_splits(tmp_path, model):
    dataset = tmp_path / "my_dataset"
    dataset.mkdir()
    _write_rows(dataset / "train.csv", _own_rows(16))
    _write_rows(dataset / "validation.csv", _own_rows(6))
    out = tmp_path / "out"
    assert main(["--model_name_or_path", str(model), "--dataset_name", str(dataset), "--output_dir", str(out),
                 "--do_train", "--do_eval", "--max_seq_length", "32", "--per_device_train_batch_size", "8",
                 "--num_train_epochs", "1", "--max_eval_samples", "4"]) == 0
    assert _json(out / "eval_results.json")["eval_samples"] == 4
