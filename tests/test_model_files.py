"""A truncated or damaged model file is reported by name before a library fails on it without one; a written model
folder's files all have the modes the umask gives."""
import os

import pytest

from pipeline.errors import DataError
from pipeline.model_files import check_weight_files, safetensors_problem


@pytest.fixture()
def weights(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "model" / "model.safetensors"
    path.parent.mkdir()
    save_file({"embeddings": torch.ones(16, 8), "bias": torch.zeros(8)}, str(path))
    return path


def test_an_intact_safetensors_file_has_no_problem(weights):
    assert safetensors_problem(weights) == ""
    check_weight_files(weights.parent)


@pytest.mark.parametrize("keep, problem", [
    (5, "5 bytes, too short for a safetensors header"),
    (40, "its header announces"),
    (-1, "its tensors take 544 bytes of data, the file holds 543"),
])
def test_a_truncated_safetensors_file_is_an_error_naming_it(weights, keep, problem):
    data = weights.read_bytes()
    weights.write_bytes(data[:keep])
    assert safetensors_problem(weights).startswith(problem)
    with pytest.raises(DataError) as info:
        check_weight_files(weights.parent)
    assert str(info.value).startswith(f"{weights} is truncated or damaged ({problem}")


def test_a_header_that_is_not_json_is_damaged(weights):
    data = bytearray(weights.read_bytes())
    data[8:12] = b"\xff\xfe{["
    weights.write_bytes(bytes(data))
    assert safetensors_problem(weights) == "its header is not a safetensors header"


def test_a_hub_name_is_left_to_the_hub(weights, monkeypatch):
    """Only a folder that exists is checked: a name with no such folder is the hub's, which checks its downloads."""
    weights.write_bytes(weights.read_bytes()[:5])
    monkeypatch.chdir(weights.parents[1])
    with pytest.raises(DataError):
        check_weight_files("model")  # a relative name that is a folder here: checked
    assert not (weights.parents[1] / "google-bert" / "bert-base-uncased").exists()
    assert check_weight_files("google-bert/bert-base-uncased") is None  # not a folder here: left to the hub


def test_every_file_of_a_written_model_folder_follows_the_umask(tmp_path):
    from transformers import BertModel, BertTokenizerFast

    from pipeline.model_files import write_model_folder
    from tests.test_finetuning_fixtures import write_tiny_model

    source = write_tiny_model(tmp_path / "source")
    previous = os.umask(0o022)
    try:
        write_model_folder(BertModel.from_pretrained(source), BertTokenizerFast.from_pretrained(source),
                           tmp_path / "final_model")
    finally:
        os.umask(previous)
    modes = {path.name: oct(path.stat().st_mode & 0o777) for path in (tmp_path / "final_model").iterdir()}
    assert "model.safetensors" in modes and set(modes.values()) == {"0o644"}, modes
