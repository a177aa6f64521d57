"""Publishing to the Hub, offline: which files an upload sends, and that every way it cannot happen (no token, no
network, a token in the config) fails in one line, before any work, and leaves the model folder as it was."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, DataError, ExitCode
from pipeline.hub_publish import PublishError, files_to_upload, git_blob_sha1, local_files, publish_folder
from tests.test_pretrain_stage import tiny_config

REPO_ROOT = Path(__file__).resolve().parents[1]
FAKE_TOKEN = "hf_" + "x" * 34


def _model_folder(root: Path) -> Path:
    folder = root / "final_model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "bert"}\n')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 8)
    (folder / "README.md").write_text("---\nlicense: other\n---\n# card\n")
    return folder


def _fingerprint(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_only_files_the_hub_lacks_or_holds_otherwise_are_uploaded(tmp_path):
    local = local_files(_model_folder(tmp_path))
    weights, config, card = (local[name] for name in ("model.safetensors", "config.json", "README.md"))
    remote = {
        "model.safetensors": {"bytes": weights["bytes"], "sha256": weights["sha256"], "blob_id": "pointer"},  # LFS
        "config.json": {"bytes": config["bytes"], "sha256": None, "blob_id": config["git_sha1"]},
        "README.md": {"bytes": card["bytes"], "sha256": None, "blob_id": "0" * 40},  # same size, other content
        "old_file.txt": {"bytes": 1, "sha256": None, "blob_id": "1" * 40},  # only on the Hub: left alone
    }
    assert files_to_upload(local, remote) == ["README.md"]
    assert files_to_upload(local, {}) == ["README.md", "config.json", "model.safetensors"]  # a new repository
    remote["model.safetensors"]["sha256"] = "f" * 64
    assert files_to_upload(local, remote) == ["README.md", "model.safetensors"]


def test_the_git_blob_id_is_the_one_git_gives(tmp_path):
    path = tmp_path / "file.json"
    path.write_bytes(b'{"a": 1}\n')
    git = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True)
    assert git_blob_sha1(path.read_bytes()) == git.stdout.strip() == local_files(tmp_path)["file.json"]["git_sha1"]


def test_an_offline_upload_fails_in_one_line_and_leaves_the_folder_unchanged(tmp_path, monkeypatch):
    """The real huggingface_hub under HF_HUB_OFFLINE=1 (the test session's) raises OfflineModeIsEnabled."""
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    folder = _model_folder(tmp_path)
    before = _fingerprint(folder)
    with pytest.raises(PublishError) as error:
        publish_folder(folder, "someone/tiny-bert", private=True, message="test")
    assert "\n" not in str(error.value) and "offline mode is enabled" in str(error.value)
    assert "rerun" in str(error.value) and _fingerprint(folder) == before


def _without_token(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    empty = tmp_path / "hf_home"
    empty.mkdir()
    return {**env, "HF_HOME": str(empty), "HF_TOKEN_PATH": str(empty / "token"), "HF_HUB_OFFLINE": "0"}


def test_push_to_hub_without_a_token_stops_before_training_in_one_line(tmp_path):
    folder = _model_folder(tmp_path)
    before = _fingerprint(folder)
    command = [sys.executable, str(REPO_ROOT / "pretraining" / "run_pretraining.py"), "--dataset_path",
               str(tmp_path / "missing_samples"), "--output_dir", str(tmp_path), "--tokenizer_name",
               "bert-base-uncased", "--push_to_hub", "--hub_model_id", "someone/tiny-bert"]
    result = subprocess.run(command, capture_output=True, text=True, env=_without_token(tmp_path), timeout=300)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "hf auth login" in errors[0] and "HF_TOKEN" in errors[0]
    assert _fingerprint(folder) == before


def _config(tmp_path, *opts):
    return tiny_config(tmp_path, "PRETRAIN.ENABLED", "False", *opts)


def test_the_publish_stage_is_checked_when_the_config_is_read(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))
    with pytest.raises(ConfigError) as error:
        _config(tmp_path, "PUBLISH.ENABLED", "True", "PUBLISH.HUB_REPO", "someone/tiny-bert")
    assert any("hf auth login" in problem for problem in error.value.problems)
    assert any("HF_HUB_OFFLINE=1" in problem for problem in error.value.problems)  # this session's setting
    with pytest.raises(ConfigError, match="PUBLISH.HUB_REPO = 'not a name' is not a Hub repository name"):
        _config(tmp_path, "PUBLISH.ENABLED", "True", "PUBLISH.HUB_REPO", "not a name")
    with pytest.raises(ConfigError, match="looks like a Hugging Face token"):  # refused even with publishing off
        _config(tmp_path, "PUBLISH.HUB_REPO", FAKE_TOKEN)
    assert _config(tmp_path).PUBLISH.ENABLED is False  # off by default: no token needed


def test_the_publish_stage_offline_fails_in_one_line_and_records_nothing(tmp_path, monkeypatch):
    """With a token and the checks passed, the stage meets the real huggingface_hub offline: one line, the model
    folder unchanged, no manifest (the stage stays incomplete, and the next run tries again)."""
    from huggingface_hub import constants

    from finetuning.stage import tasks_keeping_models
    from finetuning.search_plan import search_trees
    from pipeline import layout
    from publishing.stage import finetuned_repo, publish, publish_dir, publish_status, publish_targets

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # past the check at config load
    cfg = _config(tmp_path, "PUBLISH.ENABLED", "True", "PUBLISH.HUB_REPO", "someone/tiny-bert", "PUBLISH.WHAT", "both",
                  "FINETUNE.TASKS", "[MRPC]")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    trees = search_trees(cfg)
    assert tasks_keeping_models(cfg, trees[0]) == {"MRPC"}  # the best job's model must be there to publish
    assert [repo for _, _, repo in publish_targets(cfg)] == ["someone/tiny-bert", finetuned_repo("someone/tiny-bert",
                                                                                                   "MRPC")]
    with pytest.raises(DataError, match="no completed job to publish"):
        publish(cfg)  # every model is checked before the first upload
    cfg.defrost()
    cfg.PUBLISH.WHAT = "pretrained"
    cfg.freeze()
    folder = _model_folder(layout.pretrain_dir(cfg))
    before = _fingerprint(folder)
    with pytest.raises(PublishError) as error:
        publish(cfg)
    assert "\n" not in str(error.value) and "offline mode is enabled" in str(error.value)
    assert _fingerprint(folder) == before and not publish_dir(cfg).exists() and not publish_status(cfg).complete


def test_a_card_leaves_out_what_the_run_did_not_record_and_the_hub_parser_reads_it_back():
    from huggingface_hub import ModelCard

    from pipeline.model_card import finetuned_card, pretrained_card

    card = ModelCard(pretrained_card({"license": "apache-2.0", "steps": 16, "hub_datasets": ["wikimedia/wikipedia"],
                                      "local_corpora": ["/data/corpus"], "schedule": "esd | 1e-3"}))
    assert (card.data.license, card.data.datasets, card.data.pipeline_tag) == ("apache-2.0", ["wikimedia/wikipedia"],
                                                                               "fill-mask")
    assert "| steps | 16 |" in card.text and "local text folder `/data/corpus`" in card.text
    assert "tokens seen" not in card.text and "wall time" not in card.text  # not recorded: no line, no guess
    assert "| schedule | esd &#124; 1e-3 |" in card.text  # a value never breaks the table
    task = {"type": "token-classification", "name": "my_ner", "dataset_type": "my_ner"}
    card = ModelCard(finetuned_card({"task": task, "dev_results": {"f1": 0.75, "accuracy": 0.9}, "title": "job"}))
    assert card.data.pipeline_tag == "token-classification" and card.data.datasets is None  # own files: no hub name
    assert {(r.metric_type, r.metric_value) for r in card.data.eval_results} == {("f1", 0.75), ("accuracy", 0.9)}
