"""DATASET.HUGGINGFACE_DATASETS entries: their forms, and the check that the pinned `datasets` can read each one
before any work starts (local folders and files stand in for hub repos; the tests run offline)."""
import json
import re
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import main
from dataset.hub_check import check_hub_entries, hub_offline_reason
from dataset.hub_entries import HubEntry
from dataset.stage import dataset_status
from orchestration.runner import format_plan, plan
from orchestration.stages import STAGES, load_config

KEY = "DATASET.HUGGINGFACE_DATASETS"
REPO_ROOT = Path(__file__).resolve().parents[1]


def _parquet_repo(root, splits=("train", "validation"), columns=("text", "title")):
    """A local folder laid out like a Parquet repo on the hub: data/<split>-00000.parquet."""
    (root / "data").mkdir(parents=True)
    for split in splits:
        table = {column: [f"{split} {column} {i}" for i in range(3)] for column in columns}
        pq.write_table(pa.table(table), root / "data" / f"{split}-00000.parquet")
    return root


def _script_dataset(root):
    """A local folder laid out like a script dataset: a loading script named after its folder, no data files."""
    root.mkdir()
    (root / f"{root.name}.py").write_text("import datasets\n", encoding="utf-8")
    return root


def test_old_two_and_three_item_entries_keep_their_meaning():
    assert HubEntry.parse(["wikimedia/wikipedia", "20231101.en"]) == \
        HubEntry("wikimedia/wikipedia", "20231101.en", "text", "train", "")
    assert HubEntry.parse(["user/books", "", "body"]) == HubEntry("user/books", "", "body")
    assert HubEntry.parse(["user/books", "plain", ""]).text_column == "text"


def test_options_name_the_split_and_the_revision_and_reach_load_dataset():
    entry = HubEntry.parse(["user/books", "plain", "body", "split=validation", "revision=v1.0"])
    assert (entry.text_column, entry.split, entry.revision) == ("body", "validation", "v1.0")
    assert HubEntry.parse(["user/books", "", "split=test"]) == HubEntry("user/books", "", "text", "test")
    assert entry.dataset_arguments() == {"path": "user/books", "name": "plain", "revision": "v1.0"}
    assert entry.describe() == "user/books plain split=validation revision=v1.0"


def test_on_the_parquet_export_the_subset_names_a_folder_of_the_export():
    entry = HubEntry.parse(["wikipedia", "20220301.en", "text", "revision=refs/convert/parquet"])
    assert entry.dataset_arguments() == {"path": "wikipedia", "data_dir": "20220301.en",
                                         "revision": "refs/convert/parquet"}


@pytest.mark.parametrize("entry, message", [
    (["wikipedia"], r"must be \[name, subset\]"),
    (["user/ds", 2022], "must hold strings only.*quote numbers"),
    (["user/ds", "x", "text", "spilt=train"], "unknown option 'spilt'.*split, revision"),
    (["user/ds", "x", "split=a", "split=b"], "option 'split' is given twice"),
    (["user/ds", "x", "text", "revision="], "option 'revision' has no value"),
    (["user/ds", "x", "text", "body"], "item 'body' .* neither the text column"),
    (["json", ""], "give the data file\\(s\\) as the subset"),
    (["json", "a.jsonl", "text", "revision=main"], "local files, which have no revision"),
])
def test_a_malformed_entry_is_one_line_naming_the_key_and_index(entry, message):
    problems = check_hub_entries([["user/fine", "x"], entry], offline_reason="offline in this test")
    assert len(problems) == 1 and problems[0].startswith(f"{KEY}[1]: ")
    assert re.search(message, problems[0])


def test_a_loading_script_folder_is_the_script_dataset_config_error(tmp_path):
    script_dataset = _script_dataset(tmp_path / "my_ds")
    problems = check_hub_entries([[str(script_dataset), "plain_text"]])
    assert problems == [f"{KEY}[0] {script_dataset} plain_text: is a script dataset (my_ds.py), which datasets "
                        f"{datasets.__version__} no longer runs: point the entry at its data "
                        f"as files (Parquet, JSON, CSV) instead"]


def test_the_cli_exits_2_on_a_script_dataset_before_any_work(tmp_path, capsys):
    script_dataset = _script_dataset(tmp_path / "my_ds")
    config = tmp_path / "run.yaml"
    config.write_text(f"DATASET:\n  HUGGINGFACE_DATASETS: [[{script_dataset}, plain_text]]\n", encoding="utf-8")
    code = main.main(["--config", str(config), "--dry-run", "--opts", "SYSTEM.OUTPUT_ROOT", str(tmp_path / "runs")])
    assert code == 2
    assert "config error: DATASET.HUGGINGFACE_DATASETS[0]" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_parquet_folder_with_the_split_and_column_passes(tmp_path):
    repo = _parquet_repo(tmp_path / "repo")
    assert check_hub_entries([[str(repo), ""], [str(repo), "", "title", "split=validation"]]) == []


@pytest.mark.parametrize("entry_tail, message", [
    (["", "body"], r"has no column 'body' \(columns: text, title\): give the text column as the third item"),
    (["", "text", "split=test"], r"has no split 'test' \(splits: train, validation\): add split=NAME"),
    (["20231101.en"], r"has no subset '20231101.en' \(choices: default\)"),
])
def test_a_missing_column_split_or_subset_is_a_config_error(tmp_path, entry_tail, message):
    repo = _parquet_repo(tmp_path / "repo")
    problems = check_hub_entries([[str(repo), *entry_tail]])
    assert len(problems) == 1 and problems[0].startswith(f"{KEY}[0] {repo}")
    assert re.search(message, problems[0])


def test_local_files_through_a_generic_builder_are_checked_for_the_text_column(tmp_path):
    data = tmp_path / "notes.jsonl"
    data.write_text(json.dumps({"body": "x"}) + "\n", encoding="utf-8")
    parquet = tmp_path / "notes.parquet"
    pq.write_table(pa.table({"text": ["a"]}), parquet)
    problems = check_hub_entries([["json", str(data)], ["parquet", str(parquet)], ["csv", str(tmp_path / "*.csv")]])
    assert problems == [f"{KEY}[0] json {data}: has no column 'text' (columns: body): give the text column as the "
                        f"third item", f"{KEY}[2] csv {tmp_path}/*.csv: no file matches {tmp_path}/*.csv"]


def test_a_missing_folder_given_as_a_path_is_reported_even_offline(tmp_path):
    assert check_hub_entries([[str(tmp_path / "nope"), ""]]) == [f"{KEY}[0] {tmp_path / 'nope'}: folder does not exist"]


def test_a_missing_folder_of_the_parquet_export_lists_the_ones_there(tmp_path):
    for subset in ("20220301.en", "20220301.de"):
        (tmp_path / "export" / subset / "train").mkdir(parents=True)
        pq.write_table(pa.table({"text": ["a"]}), tmp_path / "export" / subset / "train" / "0000.parquet")
    entry = [str(tmp_path / "export"), "20220301.fr", "text", "revision=refs/convert/parquet"]
    problems = check_hub_entries([entry])
    assert len(problems) == 1
    assert problems[0].endswith("the Parquet export has no folder '20220301.fr' (choices: 20220301.de, 20220301.en)")
    entry[1] = "20220301.de"
    assert check_hub_entries([entry]) == []


def test_hub_repos_are_not_asked_offline_and_the_dry_run_plan_says_so(tmp_path):
    assert hub_offline_reason() == "HF_HUB_OFFLINE is set"  # tests/conftest.py sets it
    assert check_hub_entries([["no-such-user/no-such-dataset", "x"]]) == []
    cfg = load_config(REPO_ROOT / "configs" / "bert-base.yaml", ["SYSTEM.OUTPUT_ROOT", str(tmp_path / "runs")])
    plan_lines = format_plan(plan(cfg, stages=[s for s in STAGES if s.name == "dataset"])).splitlines()
    skipped = [line for line in plan_lines if "not checked against the hub" in line]
    assert skipped == ["  [run     ] dataset: not run yet; hub datasets not checked against the hub (HF_HUB_OFFLINE "
                       "is set)"]
    assert "hub:wikimedia/wikipedia 20231101.en" in dataset_status(cfg).reads


def test_a_hub_query_that_cannot_connect_says_how_to_skip_the_check():
    # The real huggingface_hub call, refused by its offline mode: what a user sees when the hub drops mid-check.
    problems = check_hub_entries([["no-such-user/no-such-dataset", "x"]], offline_reason="")
    assert len(problems) == 1 and problems[0].startswith(f"{KEY}[0] no-such-user/no-such-dataset x: cannot reach")
    assert problems[0].endswith("set HF_HUB_OFFLINE=1 to skip this check")


def test_an_unreachable_hub_is_detected_and_named(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read by huggingface_hub when it was imported
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing answers
    assert hub_offline_reason() == "the hub at http://127.0.0.1:9 cannot be reached: ConnectError"


def test_revision_and_split_change_the_dataset_id(tmp_path):
    def dataset_id(entry):
        opts = ["SYSTEM.OUTPUT_ROOT", str(tmp_path), "DATASET.HUGGINGFACE_DATASETS", json.dumps([entry])]
        return load_config(None, opts).DATASET.ID

    base = dataset_id(["user/books", "plain"])
    assert base.startswith("books-")
    others = {dataset_id(["user/books", "plain", "text", "split=validation"]),
              dataset_id(["user/books", "plain", "text", "revision=v1.0"])}
    assert base not in others and len(others) == 2


def test_the_dataset_id_does_not_depend_on_the_files_of_the_current_directory(tmp_path, monkeypatch):
    """An empty subset (bookcorpusopen's in configs/bert-base.yaml) once stamped the whole current directory, so the
    ID changed as soon as the dataset stage wrote runs/ under it."""
    monkeypatch.chdir(tmp_path)
    opts = ["DATASET.HUGGINGFACE_DATASETS", json.dumps([["lucadiliello/bookcorpusopen", "", "text"]])]
    before = load_config(None, opts).DATASET.ID
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "written-by-a-stage.txt").write_text("x", encoding="utf-8")
    assert load_config(None, opts).DATASET.ID == before


def test_a_data_file_matched_by_a_builder_glob_is_part_of_the_dataset_id(tmp_path):
    (tmp_path / "data").mkdir()
    data = tmp_path / "data" / "part-0.json"
    data.write_text('{"text": "one"}\n', encoding="utf-8")
    opts = ["SYSTEM.OUTPUT_ROOT", str(tmp_path / "runs"), "DATASET.HUGGINGFACE_DATASETS",
            json.dumps([["json", str(tmp_path / "data" / "*.json")]])]
    before = load_config(None, opts).DATASET.ID
    data.write_text('{"text": "one, edited"}\n', encoding="utf-8")
    assert load_config(None, opts).DATASET.ID != before
