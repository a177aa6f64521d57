"""GLUE readers, metrics, the search grid, job records and config checks of the finetune stage (no training)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from finetuning.glue_data import load_split
from finetuning.glue_tasks import GLUE_TASKS
from finetuning.job_record import expected_record, is_completed
from finetuning.job_process import claimed
from finetuning.metrics import task_dev_metrics
from finetuning.job_selection import best_job
from finetuning.search_plan import PlannedJob as Job, job_name, plan_task_jobs
from pipeline.errors import ConfigError, DataError
from tests.test_finetuning_fixtures import finetune_config, write_glue


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    return write_glue(tmp_path_factory.mktemp("glue"))


EXPECTED_LABELS = {"CoLA": [0, 1, 0], "SST-2": [0, 1, 0], "MRPC": [0, 1, 0], "QQP": [0, 1, 0], "WNLI": [0, 1, 0],
                   "QNLI": [0, 1, 0], "RTE": [0, 1, 0], "MNLI": [0, 1, 2], "STS-B": [0.0, 0.7, 1.4]}


@pytest.mark.parametrize("task_name", list(EXPECTED_LABELS))
def test_every_task_reader_gives_text_labels_and_test_index(glue, task_name):
    task = GLUE_TASKS[task_name]
    train = load_split(task, "train", "train", str(glue))
    assert len(train) == 24
    assert train.labels[:3] == pytest.approx(EXPECTED_LABELS[task_name])
    assert (train.text_b is None) == (len(task.hub_text_columns) == 1)
    assert all(text.strip() for text in train.text_a)
    for dev_name in task.dev:
        assert len(load_split(task, "dev", dev_name, str(glue))) == 8
    for test_name in task.test:
        test = load_split(task, "test", test_name, str(glue))
        assert test.labels is None and len(test) == 6
        assert test.index[:2] == (["1000", "1001"] if task_name == "QQP" else ["0", "1"])


def test_cola_has_no_header_and_mrpc_bom_header_is_read(glue):
    cola = load_split(GLUE_TASKS["CoLA"], "train", "train", str(glue))
    first_line = (glue / "CoLA" / "train.tsv").read_text().splitlines()[0]
    assert cola.text_a[0] == first_line.split("\t")[3]  # the first line is data, not a header
    mrpc = load_split(GLUE_TASKS["MRPC"], "dev", "dev", str(glue))
    assert mrpc.text_a[0].startswith('" ') and mrpc.text_a[0].endswith(' "')  # stray quotes kept, not parsed


def test_ax_reader_reads_the_diagnostic_set(glue):
    ax = load_split(GLUE_TASKS["AX"], "test", "AX", str(glue))
    assert len(ax) == 5 and ax.labels is None and ax.text_b is not None


def test_missing_task_file_is_a_one_line_error_naming_the_path(tmp_path):
    root = write_glue(tmp_path / "glue", tasks=["RTE"])
    (root / "RTE" / "dev.tsv").unlink()
    with pytest.raises(DataError) as info:
        load_split(GLUE_TASKS["RTE"], "dev", "dev", str(root))
    assert str(root / "RTE" / "dev.tsv") in str(info.value) and "\n" not in str(info.value)


def test_wrong_columns_are_a_one_line_error_naming_file_and_column(tmp_path):
    root = write_glue(tmp_path / "glue", tasks=["QQP"])
    path = root / "QQP" / "train.tsv"
    path.write_text(path.read_text().replace("question2", "q2", 1))
    with pytest.raises(DataError) as info:
        load_split(GLUE_TASKS["QQP"], "train", "train", str(root))
    assert str(path) in str(info.value) and "'question2'" in str(info.value) and "\n" not in str(info.value)


def test_unknown_label_is_an_error(tmp_path):
    root = write_glue(tmp_path / "glue", tasks=["RTE"])
    rte = root / "RTE" / "train.tsv"
    rte.write_text(rte.read_text().replace("not_entailment", "maybe", 1))
    with pytest.raises(DataError, match="unknown label 'maybe'"):
        load_split(GLUE_TASKS["RTE"], "train", "train", str(root))


def _insert_lines(path, after: int, *lines) -> None:
    rows = path.read_text(encoding="utf-8").split("\n")
    path.write_text("\n".join(rows[:after] + list(lines) + rows[after:]), encoding="utf-8")


def test_a_train_row_with_too_few_or_too_many_columns_is_an_error_naming_file_line_and_column_count(tmp_path):
    root = write_glue(tmp_path / "glue", tasks=["CoLA"])
    train = root / "CoLA" / "train.tsv"
    _insert_lines(train, 5, "gj04\t1\tthree columns only", "gj04\t1\t\ta sentence\twith\ttabs")
    with pytest.raises(DataError) as info:
        load_split(GLUE_TASKS["CoLA"], "train", "train", str(root))
    assert str(info.value) == (f"{train}:6: 3 tab-separated column(s), expected 4 (2 such rows in the file); fix the"
                               f" file, or set FINETUNE.MALFORMED_ROWS skip (run_glue.py: --malformed_rows skip) to"
                               f" drop such rows")
    # The long row alone is an error too, not a sentence that happens to hold tabs.
    train.write_text(train.read_text().replace("gj04\t1\tthree columns only\n", ""))
    with pytest.raises(DataError, match=r"train\.tsv:6: 6 tab-separated column\(s\), expected 4;"):
        load_split(GLUE_TASKS["CoLA"], "train", "train", str(root))


def test_malformed_rows_skip_drops_train_and_dev_rows_with_a_printed_count(tmp_path, capsys):
    root = write_glue(tmp_path / "glue", tasks=["QNLI"])
    dev = root / "QNLI" / "dev.tsv"
    _insert_lines(dev, 2, "99\tonly a question", "98\tq\ts\tentailment\textra")
    split = load_split(GLUE_TASKS["QNLI"], "dev", "dev", str(root), malformed_rows="skip")
    assert len(split) == 8 and "99" not in split.index and "98" not in split.index
    assert capsys.readouterr().err.strip() == (f"warning: {dev}: skipped 2 row(s) without 4 columns (the first at"
                                               f" line 3)")


def test_a_malformed_test_row_is_an_error_even_when_skipping(tmp_path):
    root = write_glue(tmp_path / "glue", tasks=["CoLA"])
    test = root / "CoLA" / "test.tsv"
    _insert_lines(test, 3, "1062")  # an index without its sentence: dropping it would lose a prediction
    with pytest.raises(DataError) as info:
        load_split(GLUE_TASKS["CoLA"], "test", "CoLA", str(root), malformed_rows="skip")
    assert str(info.value) == (f"{test}:4: 1 tab-separated column(s), expected 2; a test file must keep every row"
                               f" (one prediction each), so fix that line")


def test_trailing_tabs_blank_lines_and_a_stray_carriage_return_lose_no_row(tmp_path):
    root = write_glue(tmp_path / "glue", tasks=["SST-2"])
    test = root / "SST-2" / "test.tsv"
    _insert_lines(test, 2, "", "  ", "70\tends with tabs\t\t", "71\ta \r inside")
    split = load_split(GLUE_TASKS["SST-2"], "test", "SST-2", str(root))
    assert len(split) == 8 and split.index[1:4] == ["70", "71", "1"]
    assert split.text_a[1:3] == ["ends with tabs", "a \r inside"]


def test_the_metrics_agree_with_scikit_learn_and_scipy_on_random_and_degenerate_inputs():
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score, matthews_corrcoef

    from finetuning.metrics import compute_metrics

    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, k, n), rng.integers(0, k, n)) for k, n in ((2, 50), (3, 40), (5, 30), (4, 7))]
    cases += [(np.ones(6, int), np.array([0, 1, 0, 1, 1, 1])), (np.zeros(4, int), np.zeros(4, int)),
              (np.array([2, 2, 0]), np.array([1, 1, 1]))]  # constant predictions, one class, disjoint classes
    for predictions, labels in cases:
        got = compute_metrics(("mcc", "f1", "macro_f1"), predictions, labels, positive=1)
        assert got["mcc"] == pytest.approx(matthews_corrcoef(labels, predictions), abs=1e-12)
        assert got["f1"] == pytest.approx(f1_score(labels, predictions, labels=[1], average="macro",
                                                   zero_division=0), abs=1e-12)
        assert got["macro_f1"] == pytest.approx(f1_score(labels, predictions, average="macro", zero_division=0),
                                                abs=1e-12)
    for x, y in ((rng.normal(size=30), rng.normal(size=30)), (rng.integers(0, 4, 25), rng.integers(0, 3, 25))):
        got = compute_metrics(("pearson", "spearman"), x, y)
        assert (got["pearson"], got["spearman"]) == pytest.approx((pearsonr(x, y)[0], spearmanr(x, y)[0]), abs=1e-12)
    assert compute_metrics(("pearson", "spearman"), np.ones(5), np.arange(5)) == {"pearson": 0.0, "spearman": 0.0}


@pytest.mark.parametrize("task_name, dev_name, predictions, labels, expected", [
    ("CoLA", "dev", [1, 0, 1, 0], [1, 0, 1, 0], {"mcc": 1.0}),
    ("CoLA", "dev", [1, 1, 1, 1], [1, 0, 1, 0], {"mcc": 0.0}),
    ("SST-2", "dev", [1, 0, 1, 1], [1, 0, 0, 1], {"accuracy": 0.75}),
    ("MRPC", "dev", [1, 0, 1, 1], [1, 0, 0, 1], {"accuracy": 0.75, "f1": 0.8}),
    ("QQP", "dev", [0, 0, 1, 1], [1, 0, 0, 1], {"accuracy": 0.5, "f1": 0.5}),
    ("STS-B", "dev", [0.1, 1.0, 2.5, 4.0], [0.0, 1.2, 2.0, 5.0], {"pearson": 0.9686, "spearman": 1.0}),
    ("MNLI", "dev_matched", [0, 1, 2, 2], [0, 1, 2, 1], {"accuracy": 0.75}),
    ("MNLI", "dev_mismatched", [0, 1, 2, 2], [0, 1, 1, 1], {"accuracy_mm": 0.5}),
    ("QNLI", "dev", [0, 1], [0, 1], {"accuracy": 1.0}),
    ("RTE", "dev", [0, 1], [1, 1], {"accuracy": 0.5}),
    ("WNLI", "dev", [0, 0], [1, 1], {"accuracy": 0.0}),
])
def test_every_task_metric(task_name, dev_name, predictions, labels, expected):
    got = task_dev_metrics(GLUE_TASKS[task_name], dev_name, np.array(predictions), np.array(labels))
    assert got == pytest.approx(expected, abs=1e-4)


def test_grid_is_lr_by_batch_by_epochs_by_seeds_and_large_tasks_use_the_large_grid(tmp_path):
    cfg = finetune_config(tmp_path, tmp_path, "", **{"FINETUNE.SEEDS": "[1, 2, 3]",
                                                           "FINETUNE.SEARCH.SMALL.LEARNING_RATES": "[1e-5, 3e-5]",
                                                           "FINETUNE.SEARCH.SMALL.EPOCHS": "[3, 5]"})
    rte = plan_task_jobs(cfg, "RTE")
    assert len(rte) == 2 * 1 * 2 * 3
    assert {job.name for job in rte} >= {"lr1e-05_bs8_ep3_seed1", "lr3e-05_bs8_ep5_seed3"}
    assert len(plan_task_jobs(cfg, "MNLI")) == 3 and plan_task_jobs(cfg, "MNLI")[0].learning_rate == 1e-3


def _fake_completed(root, job, score, metric="accuracy"):
    folder = root / job.task / job.name
    folder.mkdir(parents=True)
    record = {**expected_record(job, "m", None, {}), "status": "completed"}
    (folder / "job.json").write_text(json.dumps(record))
    (folder / "eval_results.json").write_text(json.dumps({metric: score}))


def test_best_job_takes_the_best_median_configuration_then_its_best_seed(tmp_path):
    # Config A has one lucky seed (max 0.90) but median 0.60; config B is steadily 0.70-0.75.
    scores = {(1e-5, 42): 0.90, (1e-5, 43): 0.60, (1e-5, 44): 0.50,
              (3e-5, 42): 0.70, (3e-5, 43): 0.75, (3e-5, 44): 0.71}
    jobs = [Job("MNLI", lr, 32, 3, seed) for lr, seed in scores]
    for job in jobs:
        _fake_completed(tmp_path, job, scores[(job.learning_rate, job.seed)])
    done = lambda job: is_completed(tmp_path / job.task / job.name, expected_record(job, "m", None, {}))  # noqa
    assert best_job(tmp_path / "MNLI", jobs, "accuracy", done) == Job("MNLI", 3e-5, 32, 3, 43)
    assert job_name(3e-5, 32, 3, 43) == "lr3e-05_bs32_ep3_seed43"


def test_completed_job_counts_only_for_the_same_model_and_settings(tmp_path):
    job = Job("RTE", 1e-5, 16, 3, 42)
    _fake_completed(tmp_path, job, 0.6)
    folder = tmp_path / "RTE" / job.name
    assert is_completed(folder, expected_record(job, "m", None, {}))
    assert not is_completed(folder, expected_record(job, "other-model", None, {}))
    assert not is_completed(folder, expected_record(job, "m", "MNLI/x", {}))
    record = json.loads((folder / "job.json").read_text())
    (folder / "job.json").write_text(json.dumps({**record, "status": "running"}))
    assert not is_completed(folder, expected_record(job, "m", None, {}))


def test_a_claim_is_exclusive_and_ends_with_its_process_however_it_ends(tmp_path):
    folder = tmp_path / "job"
    with claimed(folder) as mine:
        assert mine
        with claimed(folder) as again:
            assert not again  # held by this process (another of its jobs' threads cannot take it)
    with claimed(folder) as mine:
        assert mine  # the block's end released it
    hold = ("import sys, time; from pathlib import Path; from finetuning.job_process import claimed; "
            "claim = claimed(Path(sys.argv[1])); claim.__enter__(); print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(folder)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1])
    try:
        assert holder.stdout.readline() == "held\n"
        with claimed(folder) as mine:
            assert not mine  # held by another live process
    finally:
        holder.kill()  # SIGKILL: no chance to release anything
        holder.wait()
    with claimed(folder) as mine:
        assert mine  # the killed process left no claim behind


def test_validate_config_reports_bad_finetune_settings_one_line_each(tmp_path):
    from finetuning.stage import validate_config

    glue = write_glue(tmp_path / "glue", tasks=["RTE", "MNLI"])
    cfg = finetune_config(tmp_path, tmp_path, glue, **{"FINETUNE.TASKS": "[rte, mnli]"})
    (glue / "diagnostic" / "diagnostic.tsv").unlink()
    cfg.defrost()
    cfg.FINETUNE.TASKS = ["rte", "mnli", "sst3", "SST-2"]
    cfg.FINETUNE.STILT.SOURCE = "QNLI"
    cfg.FINETUNE.MULTIPROCESS_GPU_LIST = [[0, 1], [1], []]
    cfg.FINETUNE.SEARCH.SMALL.EPOCHS = []
    problems = validate_config(cfg)
    text = "\n".join(problems)
    assert "unknown task 'sst3': neither a GLUE task" in text
    assert f"missing {glue / 'SST-2'}" in text
    assert f"missing {glue / 'diagnostic' / 'diagnostic.tsv'}" in text
    assert "GPU 1 is in two groups" in text and "MULTIPROCESS_GPU_LIST[2]" in text
    assert "FINETUNE.SEARCH.SMALL.EPOCHS is empty" in text
    assert all("\n" not in line for line in problems)
    cfg.FINETUNE.TASKS = ["rte", "mnli"]
    cfg.FINETUNE.MULTIPROCESS_GPU_LIST = []
    cfg.FINETUNE.SEARCH.SMALL.EPOCHS = [1]
    assert any("STILT.SOURCE = QNLI is not in FINETUNE.TASKS" in p for p in validate_config(cfg))


def _write_hub_layout(root, config, columns, splits):
    """A local folder laid out like ``nyu-mll/glue`` (one folder per config, a split per file, README configs)."""
    lines = ["---", "configs:", f"- config_name: {config}", "  data_files:"]
    for split, rows in splits.items():
        path = root / config / f"{split}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([",".join(columns)] + [",".join(map(str, row)) for row in rows]) + "\n")
        lines += [f"  - split: {split}", f"    path: {config}/{split}.csv"]
    (root / "README.md").write_text("\n".join(lines + ["---", ""]))


def test_hub_reader_maps_hub_columns_labels_and_idx(tmp_path):
    columns = ("sentence1", "sentence2", "label", "idx")
    _write_hub_layout(tmp_path, "mrpc", columns, {
        "train": [("a cat", "the cat", 1, 0), ("a dog", "a tree", 0, 1)],
        "validation": [("big", "small", 0, 0)], "test": [("red", "blue", -1, 7), ("sad", "happy", -1, 9)]})
    task = GLUE_TASKS["MRPC"]
    train = load_split(task, "train", "train", "", hub_path=str(tmp_path))
    assert train.text_a == ["a cat", "a dog"] and train.text_b == ["the cat", "a tree"] and train.labels == [1, 0]
    test = load_split(task, "test", "MRPC", "", hub_path=str(tmp_path))
    assert test.labels is None and test.index == ["7", "9"]


def test_unreachable_hub_is_a_one_line_error_suggesting_glue_dir():
    with pytest.raises(DataError) as info:
        load_split(GLUE_TASKS["RTE"], "train", "train", "", hub_path="nyu-mll/glue")  # offline in tests
    assert "FINETUNE.GLUE_DIR" in str(info.value) and "\n" not in str(info.value)


def test_a_gpu_group_runs_its_job_under_torchrun_with_the_batch_split_across_its_gpus(tmp_path):
    from finetuning.job_process import job_command
    from finetuning.search_scheduler import job_arguments

    cfg = finetune_config(tmp_path, tmp_path, "", **{"SYSTEM.NUM_GPUS": -1})
    arguments = job_arguments(cfg, Job("RTE", 1e-5, 32, 3, 42), tmp_path / "job", "m", False, False, 2)
    assert arguments[arguments.index("--per_device_train_batch_size") + 1] == "16"
    assert "--use_cpu" not in arguments and "--save_model" not in arguments
    command = job_command(arguments, processes=2)
    assert command[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert job_command(arguments, processes=1)[1].endswith("run_glue.py")


def test_jobs_use_every_gpu_of_the_node_or_the_configured_cpu_processes(tmp_path, monkeypatch):
    from finetuning.search_scheduler import job_slots

    groups = finetune_config(tmp_path, tmp_path, "", **{"SYSTEM.NUM_GPUS": -1,
                                                        "FINETUNE.MULTIPROCESS_GPU_LIST": "[[0, 1], [2, 3]]"})
    assert job_slots(groups) == [([0, 1], 2), ([2, 3], 2)]
    cpu = finetune_config(tmp_path, tmp_path, "", **{"SYSTEM.PROCESSES_PER_NODE": 2})
    assert job_slots(cpu) == [(None, 2)]
    assert job_slots(finetune_config(tmp_path, tmp_path, "")) == [(None, 1)]
    monkeypatch.setattr("pipeline.hardware.visible_gpu_count", lambda: 4)  # a 4-GPU node, no GPU list
    node = finetune_config(tmp_path, tmp_path, "", **{"SYSTEM.NUM_GPUS": -1})
    assert job_slots(node) == [([0], 1), ([1], 1), ([2], 1), ([3], 1)]


def test_cpu_processes_must_split_every_batch_size_evenly(tmp_path):
    with pytest.raises(ConfigError, match="batch size 8 is not divisible by SYSTEM.PROCESSES_PER_NODE = 3"):
        finetune_config(tmp_path, tmp_path, "", **{"SYSTEM.PROCESSES_PER_NODE": 3})


def test_the_search_eta_divides_the_work_over_every_slot_that_runs_jobs_side_by_side(tmp_path):
    """On a 4-GPU node without a MULTIPROCESS_GPU_LIST, four jobs run at once: the ETA is a quarter of one at a
    time, as it is with a list of four groups."""
    from finetuning.search_scheduler import JobScheduler

    first, rest = Job("RTE", 1e-5, 8, 1, 1), [Job("RTE", 1e-5, 8, 1, seed) for seed in (2, 3, 4, 5)]
    work = {(job, False): 100 for job in [first, *rest]}

    def eta(**overrides):
        progress = JobScheduler(finetune_config(tmp_path, tmp_path, "", **overrides), work).progress
        progress.finish((first, False), 10.0)  # 0.1 s per unit of work
        return progress.eta()

    assert eta() == 40.0
    assert eta(**{"SYSTEM.NUM_GPUS": 4}) == 10.0
    assert eta(**{"SYSTEM.NUM_GPUS": 4, "FINETUNE.MULTIPROCESS_GPU_LIST": "[[0], [1], [2], [3]]"}) == 10.0
    assert eta(**{"SYSTEM.NUM_GPUS": 4, "FINETUNE.MULTIPROCESS_GPU_LIST": "[[0, 1, 2, 3]]"}) == 40.0


def test_a_saved_model_folder_is_swapped_for_the_new_one_with_no_leftovers(tmp_path):
    """STILT targets and exports read a model folder that a rerun rewrites: it is replaced whole, never removed
    first, and no temporary folder is left beside it."""
    from pipeline.model_files import write_model_folder

    class Saves:
        def __init__(self, text):
            self.text = text

        def save_pretrained(self, folder):
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / f"{self.text}.json").write_text(self.text)

    target = tmp_path / "job" / "model"
    write_model_folder(Saves("first"), Saves("vocab"), target)
    write_model_folder(Saves("second"), Saves("vocab"), target, lambda folder: (folder / "extra.txt").write_text("x"))
    assert sorted(p.name for p in target.iterdir()) == ["extra.txt", "second.json", "vocab.json"]
    assert [p.name for p in target.parent.iterdir()] == ["model"]


def test_a_name_or_path_is_a_local_path_when_written_as_one_or_found_on_disk(tmp_path):
    from pipeline.defaults import is_local_path

    (tmp_path / "bert-tiny").mkdir()
    assert all(is_local_path(value) for value in ("/models/x", "./x", "../x", "~/x", "x/"))
    assert is_local_path("bert-tiny", tmp_path) and not is_local_path("bert-tiny")
    assert not is_local_path("google-bert/bert-base-uncased")


def test_a_job_folder_name_reads_back_into_its_grid_values():
    from finetuning.search_plan import parse_job_name

    name = job_name(5e-5, 32, 3, 42)
    assert name == "lr5e-05_bs32_ep3_seed42"
    assert parse_job_name(name) == {"lr": "5e-05", "bs": "32", "ep": "3", "seed": "42"}
    assert parse_job_name("model") == {}
