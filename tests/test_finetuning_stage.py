"""The finetune stage end to end on a tiny BERT: run_glue.py jobs, regression, AX, STILT, crashes, reruns."""
import csv
import json
import shutil

import numpy as np
import pytest

from finetuning.glue_tasks import GLUE_TASKS
from finetuning.job_process import claimed
from tests.test_finetuning_fixtures import finetune_config, write_glue, write_tiny_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tiny_bert"))


def _read_predictions(path):
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["index", "prediction"]
    return rows[1:]


def test_run_glue_trains_stsb_as_regression_and_caches_tokenization(tmp_path, model):
    from finetuning.run_glue import main

    glue = write_glue(tmp_path / "glue", tasks=["STS-B"])
    cache = tmp_path / "cache"
    argv = ["--model_name_or_path", str(model), "--task_name", "sts-b", "--data_dir", str(glue),
            "--output_dir", str(tmp_path / "out"), "--overwrite_output_dir", "--do_train", "--do_eval", "--do_predict",
            "--max_seq_length", "32", "--per_device_train_batch_size", "8", "--learning_rate", "1e-3",
            "--num_train_epochs", "2", "--lr_scheduler_type", "polynomial", "--warmup_ratio", "0.06",
            "--weight_decay", "0.01", "--seed", "3", "--group_by_length", "--tokenized_cache_dir", str(cache)]
    assert main(argv) == 0
    results = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert {"pearson", "spearman", "eval_loss", "eval_pearson", "eval_spearmanr"} <= set(results)
    assert results["spearman"] == results["eval_spearmanr"]
    assert np.isfinite(results["eval_loss"])
    rows = _read_predictions(tmp_path / "out" / "predictions_STS-B.tsv")
    assert [row[0] for row in rows] == [str(i) for i in range(6)]
    assert all(0.0 <= float(row[1]) <= 5.0 for row in rows)
    cached = sorted(cache.iterdir())
    assert [p.name.split("-")[0] for p in cached] == ["dev", "test", "train"]
    mtimes = [p.stat().st_mtime_ns for p in cached]
    assert main(argv[:-2] + ["--tokenized_cache_dir", str(cache), "--num_train_epochs", "1"]) == 0
    assert [p.stat().st_mtime_ns for p in sorted(cache.iterdir())] == mtimes  # reused, not rewritten


def test_regression_predictions_are_clipped_to_the_server_range():
    from finetuning.job_run import _prediction_strings

    logits = np.array([[-1.0], [2.5], [7.0]])
    assert _prediction_strings(GLUE_TASKS["STS-B"], logits) == ["0.000", "2.500", "5.000"]
    assert _prediction_strings(GLUE_TASKS["MNLI"], np.array([[0, 1, 0], [0, 0, 2.0]])) == ["neutral", "contradiction"]


def test_run_glue_bad_task_or_missing_file_is_a_one_line_error(tmp_path, model, capsys):
    from finetuning.run_glue import main

    glue = write_glue(tmp_path / "glue", tasks=["RTE"])
    (glue / "RTE" / "train.tsv").unlink()
    base = ["--model_name_or_path", str(model), "--data_dir", str(glue), "--output_dir", str(tmp_path / "o"),
            "--do_train", "--do_eval"]
    assert main(base + ["--task_name", "rte"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: GLUE file not found") and str(glue / "RTE" / "train.tsv") in err
    assert "\n" not in err
    assert main(base + ["--task_name", "rtee"]) == 2  # a flag problem, found before any work
    assert capsys.readouterr().err.strip().startswith("error: unknown GLUE task 'rtee'")


@pytest.mark.slow
def test_stage_runs_mnli_with_ax_then_stilt_from_the_best_mnli_job_and_rerun_skips(tmp_path, model):
    from finetuning.job_selection import best_job
    from finetuning.search_plan import SearchTree
    from finetuning.stage import finetune, finetune_status
    from pipeline import layout

    glue = write_glue(tmp_path / "glue", tasks=["MNLI", "RTE"])
    cfg = finetune_config(tmp_path, model, glue, **{"FINETUNE.TASKS": "[mnli, rte]", "FINETUNE.SEEDS": "[1, 2]",
                                                     "FINETUNE.STILT.TARGETS": "[RTE]"})
    assert not finetune_status(cfg).complete
    finetune(cfg)
    root = layout.finetune_dir(cfg)
    status = finetune_status(cfg)
    assert status.complete and str(root) in status.writes

    mnli_jobs = sorted(p for p in (root / "MNLI").iterdir() if not p.name.startswith("."))
    assert [p.name for p in mnli_jobs] == ["lr0.001_bs8_ep1_seed1", "lr0.001_bs8_ep1_seed2"]
    for job_dir in mnli_jobs:
        record = json.loads((job_dir / "job.json").read_text())
        assert record["status"] == "completed" and record["init_from"] is None and record["error"] is None
        results = json.loads((job_dir / "eval_results.json").read_text())
        assert {"accuracy", "accuracy_mm", "eval_loss", "eval_accuracy", "eval_accuracy_mm", "eval_loss_mm"} <= set(
            results)
        assert results["accuracy_mm"] == results["eval_accuracy_mm"]
        assert not list(job_dir.glob("checkpoint-*"))  # the stage's jobs write no checkpoints
        for name, rows in (("MNLI-m", 6), ("MNLI-mm", 6), ("AX", 5)):
            predictions = _read_predictions(job_dir / f"predictions_{name}.tsv")
            assert len(predictions) == rows
            assert {p[1] for p in predictions} <= {"entailment", "neutral", "contradiction"}
        assert (job_dir / "model" / "config.json").is_file() and (job_dir / "job.log").stat().st_size > 0

    search = SearchTree(cfg, root, False)
    best = best_job(root / "MNLI", search.jobs["MNLI"], "accuracy", search.is_done)
    for seed in (1, 2):
        rte = root / "RTE" / f"lr0.001_bs8_ep1_seed{seed}"
        record = json.loads((rte / "job.json").read_text())
        assert record["status"] == "completed" and record["init_from"] == f"MNLI/{best.name}"
        assert f"--model_name_or_path {root / 'MNLI' / best.name / 'model'} " in (rte / "job.log").read_text()
        assert not (rte / "model").exists()  # only the STILT source's jobs keep their model
        assert len(_read_predictions(rte / "predictions_RTE.tsv")) == 6
    # train, 2 dev, 2 test and AX, each tokenized once (the jobs found the stage's cache under the same key)
    assert len(list((root / "MNLI" / ".cache").glob("*.npz"))) == 6

    started = {p: json.loads((p / "job.json").read_text())["started_at"] for p in root.glob("*/lr*")}
    finetune(cfg)  # everything is complete: nothing reruns
    assert {p: json.loads((p / "job.json").read_text())["started_at"] for p in root.glob("*/lr*")} == started


@pytest.mark.slow
def test_crashed_job_is_failed_not_complete_and_retried_with_the_random_init_baseline(tmp_path, model):
    from finetuning.stage import FinetuneJobsFailed, finetune, finetune_status
    from pipeline import layout

    broken = tmp_path / "model"
    shutil.copytree(model, broken)
    weights = broken / "model.safetensors"
    good = weights.read_bytes()
    glue = write_glue(tmp_path / "glue", tasks=["WNLI"])
    cfg = finetune_config(tmp_path, broken, glue, **{"FINETUNE.TASKS": "[WNLI]", "FINETUNE.RETRIES": 0})
    weights.write_bytes(good[: len(good) // 3])  # a truncated checkpoint: the job fails loading it
    with pytest.raises(FinetuneJobsFailed) as info:  # the task has no completed job: the stage fails
        finetune(cfg)
    assert str(info.value).startswith("no successful configuration for WNLI: every job that ran failed (first: exit"
                                      " code 1") and "\n" not in str(info.value)
    job_dir = layout.finetune_dir(cfg) / "WNLI" / "lr0.001_bs8_ep1_seed1"
    record = json.loads((job_dir / "job.json").read_text())
    assert record["status"] == "failed"
    assert record["error"].startswith(f"exit code 1: error: {weights} is truncated or damaged (")
    assert not finetune_status(cfg).complete
    with claimed(job_dir) as free:
        assert free  # the stage let go of the job

    weights.write_bytes(good)
    cfg.defrost()
    cfg.FINETUNE.RANDOM_INIT_BASELINE = True
    cfg.freeze()
    finetune(cfg)
    assert json.loads((job_dir / "job.json").read_text())["status"] == "completed"
    baseline = layout.random_init_finetune_dir(cfg) / "WNLI" / "lr0.001_bs8_ep1_seed1"
    record = json.loads((baseline / "job.json").read_text())
    assert record["status"] == "completed" and record["settings"]["random_init"] is True
    assert "--random_init" in (baseline / "job.log").read_text()
    assert len(_read_predictions(baseline / "predictions_WNLI.tsv")) == 6
    assert finetune_status(cfg).complete and str(layout.random_init_finetune_dir(cfg)) in finetune_status(cfg).writes


def test_a_cpu_job_is_forked_with_torch_imported_and_keeps_a_fresh_scripts_output_env_and_exit_code(tmp_path):
    from finetuning.job_process import REPO_ROOT, run_job

    probe = tmp_path / "probe.py"
    # The start method as in a fresh interpreter (unset): under the server's, a tqdm bar's lock is a named
    # semaphore that a job stopped by Ctrl-C leaves to multiprocessing's tracker, which warns about it.
    probe.write_text("import multiprocessing, os, sys\nprint('torch imported:', 'torch' in sys.modules)\n"
                     "print('start method:', multiprocessing.get_start_method(allow_none=True))\n"
                     "print('env', os.environ['PROBE'], os.getcwd(), sys.argv[1:], file=sys.stderr)\n"
                     "raise SystemExit(int(sys.argv[1]))\n")
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    record = run_job(job_dir, {}, [str(probe), "3"], gpus=None, env={"PROBE": "x"})
    assert (record["status"], record["error"]) == ("failed", f"exit code 3: env x {REPO_ROOT} ['3']")
    log = (job_dir / "job.log").read_text()
    assert "torch imported: True" in log and "start method: None" in log  # a fresh interpreter has not imported it


def test_pre_ln_model_from_the_pretrain_stage_finetunes_and_serves_as_a_stilt_source(tmp_path, model):
    """A pretrain final_model (pre-LN, saved as stock roberta-prelayernorm) loads with
    AutoModelForSequenceClassification, trains, and its saved model restarts on a task with another head size."""
    from huggingface_hub import ModelCard
    from transformers import AutoConfig, BertTokenizerFast

    from finetuning.run_glue import main
    from pretraining.hf_model import save_final_model
    from pretraining.modeling import BertForPreTraining, build_model_config

    tokenizer = BertTokenizerFast.from_pretrained(model)
    config = build_model_config("bert-tiny", len(tokenizer), encoder_ln_mode="pre-ln", hidden_size=32,
                                num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    final_model = tmp_path / "final_model"
    save_final_model(BertForPreTraining(config), config, tokenizer, final_model)
    glue = write_glue(tmp_path / "glue", tasks=["RTE", "STS-B"])
    common = ["--data_dir", str(glue), "--overwrite_output_dir", "--do_train", "--do_eval", "--do_predict",
              "--max_seq_length", "32", "--per_device_train_batch_size", "8", "--learning_rate", "1e-3",
              "--num_train_epochs", "1", "--seed", "5"]
    assert main(["--model_name_or_path", str(final_model), "--task_name", "RTE", "--output_dir",
                 str(tmp_path / "rte"), "--save_model", *common]) == 0
    saved = tmp_path / "rte" / "model"
    card = ModelCard.load(saved / "README.md")  # the kept model's card: the dev results the job recorded
    dev = json.loads((tmp_path / "rte" / "eval_results.json").read_text())
    assert card.data.pipeline_tag == "text-classification" and card.data.base_model is None  # a local folder
    assert {(r.metric_type, r.metric_value) for r in card.data.eval_results} == {("accuracy", dev["accuracy"])}
    assert AutoConfig.from_pretrained(final_model).model_type == "roberta-prelayernorm"  # not stock bert
    assert AutoConfig.from_pretrained(saved).model_type == "roberta-prelayernorm"
    assert main(["--model_name_or_path", str(saved), "--task_name", "STS-B", "--output_dir", str(tmp_path / "stsb"),
                 *common]) == 0
    assert {"pearson", "spearman", "eval_loss"} <= set(json.loads((tmp_path / "stsb" / "eval_results.json").read_text()))
    assert len(_read_predictions(tmp_path / "stsb" / "predictions_STS-B.tsv")) == 6


def test_a_single_training_step_with_warmup_trains(tmp_path, model):
    from finetuning.run_glue import main

    glue = write_glue(tmp_path / "glue", tasks=["SST-2"])
    assert main(["--model_name_or_path", str(model), "--task_name", "sst2", "--data_dir", str(glue), "--output_dir",
                 str(tmp_path / "out"), "--do_train", "--do_eval", "--max_train_samples", "8", "--max_eval_samples",
                 "4", "--per_device_train_batch_size", "8", "--num_train_epochs", "1", "--warmup_ratio", "0.5",
                 "--lr_scheduler_type", "polynomial", "--max_seq_length", "32"]) == 0
    assert "accuracy" in json.loads((tmp_path / "out" / "eval_results.json").read_text())


def test_fp16_finetuning_without_a_gpu_is_a_config_error(tmp_path):
    from finetuning.stage import validate_config
    from orchestration.stages import load_config

    cfg = load_config(None, ["SYSTEM.NUM_GPUS", "0", "DATASET.ENABLED", "False", "PRETRAIN.ENABLED", "False",
                             "FINETUNE.MODEL_NAME_OR_PATH", "m", "FINETUNE.PRECISION", "bf16"])
    assert validate_config(cfg) == []
    cfg.defrost()
    cfg.FINETUNE.PRECISION = "fp16"
    assert validate_config(cfg) == ["FINETUNE.PRECISION = fp16 needs a GPU and this run can use none; use bf16, fp32"
                                    " or auto"]


def test_a_max_seq_length_beyond_the_models_positions_is_one_config_line_before_any_job(tmp_path, model):
    from pipeline.errors import ConfigError

    glue = write_glue(tmp_path / "glue", tasks=["CoLA"])
    for name in ("train.csv", "dev.csv"):
        (tmp_path / name).write_text("sentence,label\nthe cat sat,1\n", encoding="utf-8")
    own = ("{mine: {TRAIN_FILE: %s, VALIDATION_FILE: %s, MAX_SEQ_LENGTH: 200}}"
           % (tmp_path / "train.csv", tmp_path / "dev.csv"))
    with pytest.raises(ConfigError) as info:  # the tiny model has 128 positions
        finetune_config(tmp_path, model, glue, **{"FINETUNE.TASKS": "[CoLA, mine]", "FINETUNE.OWN_TASKS": own,
                                                  "FINETUNE.MAX_SEQ_LENGTH": 1024})
    where = f"the 128 positions of {model} (max_position_embeddings in its config.json)"
    assert info.value.problems == [f"FINETUNE.MAX_SEQ_LENGTH = 1024 exceeds {where}: use 128 or less",
                                   f"FINETUNE.OWN_TASKS.mine.MAX_SEQ_LENGTH = 200 exceeds {where}: use 128 or less"]
    with pytest.raises(ConfigError) as info:  # "": the model this run pretrains
        finetune_config(tmp_path, model, glue, **{"FINETUNE.TASKS": "[CoLA]", "FINETUNE.MODEL_NAME_OR_PATH": "",
                                                  "MODEL.MAX_POSITION_EMBEDDINGS": 256, "FINETUNE.MAX_SEQ_LENGTH": 512})
    assert info.value.problems == ["FINETUNE.MAX_SEQ_LENGTH = 512 exceeds MODEL.MAX_POSITION_EMBEDDINGS = 256 (the"
                                   " model this run pretrains): use 256 or less"]


def test_a_short_test_row_fails_the_stage_before_any_job_instead_of_losing_a_prediction(tmp_path, model):
    from finetuning.stage import finetune, finetune_status
    from pipeline import layout
    from pipeline.errors import DataError

    glue = write_glue(tmp_path / "glue", tasks=["CoLA"])
    test = glue / "CoLA" / "test.tsv"
    lines = test.read_text().split("\n")
    lines[4] = "3"  # row 3 lost its sentence
    test.write_text("\n".join(lines))
    cfg = finetune_config(tmp_path, model, glue, **{"FINETUNE.TASKS": "[CoLA]", "FINETUNE.MALFORMED_ROWS": "skip"})
    with pytest.raises(DataError, match=rf"^{test}:5: 1 tab-separated column\(s\), expected 2; a test file must keep"):
        finetune(cfg)
    assert not list(layout.finetune_dir(cfg).glob("CoLA/lr*")) and not finetune_status(cfg).complete


def test_a_split_cached_while_skipping_rows_is_not_reused_when_rows_must_be_whole(tmp_path, model):
    from transformers import AutoTokenizer

    from finetuning.tokenized_data import load_encoded
    from pipeline.errors import DataError

    glue = write_glue(tmp_path / "glue", tasks=["CoLA"])
    train = glue / "CoLA" / "train.tsv"
    train.write_text("gj04\t1\tno sentence\n" + train.read_text())
    tokenizer, task, cache = AutoTokenizer.from_pretrained(model), GLUE_TASKS["CoLA"], str(tmp_path / "cache")
    skipped = load_encoded(task, "train", "train", tokenizer, 32, str(glue), cache_dir=cache, malformed_rows="skip")
    assert len(skipped) == 24
    with pytest.raises(DataError, match=r"train\.tsv:1: 3 tab-separated column\(s\), expected 4"):
        load_encoded(task, "train", "train", tokenizer, 32, str(glue), cache_dir=cache)


def test_run_glue_malformed_rows_skip_trains_on_the_whole_rows(tmp_path, model, capsys):
    from finetuning.run_glue import main

    glue = write_glue(tmp_path / "glue", tasks=["CoLA"])
    train = glue / "CoLA" / "train.tsv"
    train.write_text("gj04\t1\tno sentence\n" + train.read_text())
    argv = ["--model_name_or_path", str(model), "--task_name", "cola", "--data_dir", str(glue), "--output_dir",
            str(tmp_path / "out"), "--do_train", "--do_predict", "--max_seq_length", "32", "--num_train_epochs", "1"]
    assert main(argv) == 1
    assert capsys.readouterr().err.strip().startswith(f"error: {train}:1: 3 tab-separated column(s), expected 4")
    assert main(argv + ["--malformed_rows", "skip"]) == 0
    assert f"warning: {train}: skipped 1 row(s) without 4 columns" in capsys.readouterr().err
    assert len(_read_predictions(tmp_path / "out" / "predictions_CoLA.tsv")) == 6


def test_a_truncated_model_file_is_an_error_naming_it(tmp_path, model):
    from finetuning.job_run import load_model
    from pipeline.errors import DataError

    broken = tmp_path / "model"
    shutil.copytree(model, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # a copy that stopped short
    with pytest.raises(DataError, match=rf"^{weights} is truncated or damaged \(its tensors take [\d,]+ bytes of data,"
                                        rf" the file holds [\d,]+\): copy it again"):
        load_model(str(broken), GLUE_TASKS["RTE"])
    assert load_model(str(broken), GLUE_TASKS["RTE"], random_init=True) is not None  # random weights need no file
