"""The config tree: every key documented and typed, overrides, and one clear line per bad-config problem."""
import subprocess
import sys
from pathlib import Path

import pytest

import main
from orchestration.stages import load_config
from pipeline.defaults import MAPPING_KEYS, SETTINGS, get_default_config, leaf_items
from pipeline.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("First article, first line.\n\nSecond article.\n", encoding="utf-8")
    return folder


def _write_yaml(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _problems(tmp_path, yaml_text, *opts):
    with pytest.raises(ConfigError) as info:
        load_config(_write_yaml(tmp_path, yaml_text), list(opts))
    return info.value.problems


def test_every_default_key_has_a_meaning_and_a_concrete_type():
    declared = {setting.key: setting for setting in SETTINGS}
    assert [key for key, _ in leaf_items(get_default_config())] == list(declared)
    for key, value in leaf_items(get_default_config()):
        assert declared[key].help, f"{key} has no one-line meaning in pipeline/defaults.py"
        assert isinstance(value, (bool, int, float, str, list)) or key in MAPPING_KEYS, \
            f"{key} has an untyped default {value!r}"


def test_get_default_config_returns_an_independent_copy():
    cfg = get_default_config()
    cfg.PRETRAIN.NUM_STEPS = 1
    assert get_default_config().PRETRAIN.NUM_STEPS != 1


def test_yaml_then_opts_override_defaults_with_types(tmp_path, corpus):
    path = _write_yaml(tmp_path, f"DATASET:\n  CUSTOMIZED_DATASETS: [{corpus}]\nPRETRAIN:\n  LEARNING_RATE: 1e-4\n"
                                 "  BATCH_SIZE: 64\n")
    cfg = load_config(path, ["PRETRAIN.NUM_STEPS", "100", "FINETUNE.ENABLED", "False", "PRETRAIN.LEARNING_RATE",
                              "2e-4", "FINETUNE.SEEDS", "[1, 2]"])
    assert cfg.PRETRAIN.NUM_STEPS == 100
    assert cfg.FINETUNE.ENABLED is False
    assert cfg.PRETRAIN.LEARNING_RATE == pytest.approx(2e-4)
    assert cfg.PRETRAIN.BATCH_SIZE == 64
    assert cfg.FINETUNE.SEEDS == [1, 2]


def test_relative_paths_resolve_against_the_current_directory(tmp_path, corpus, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["DATASET.CUSTOMIZED_DATASETS", "[corpus]", "SYSTEM.OUTPUT_ROOT", "out",
                              "PRETRAIN.BATCH_SIZE", "32", "TOKENIZER.NAME_OR_PATH", "bert-base-uncased"])
    assert cfg.DATASET.CUSTOMIZED_DATASETS == [str(corpus.resolve())]
    assert cfg.SYSTEM.OUTPUT_ROOT == str((tmp_path / "out").resolve())
    assert cfg.TOKENIZER.NAME_OR_PATH == "bert-base-uncased"  # a hub name is not a path


def test_auto_ids_are_stable_and_change_with_settings(tmp_path, corpus):
    opts = ["DATASET.CUSTOMIZED_DATASETS", f"[{corpus}]", "PRETRAIN.BATCH_SIZE", "32"]
    first, again = load_config(None, opts), load_config(None, opts)
    assert first.DATASET.ID == again.DATASET.ID and first.PRETRAIN.ID == again.PRETRAIN.ID
    masked = load_config(None, opts + ["DATASET.MASKED_LM_PROB", "0.2"])
    assert masked.DATASET.ID != first.DATASET.ID
    assert masked.PRETRAIN.ID != first.PRETRAIN.ID  # a new dataset means a new run
    workers = load_config(None, opts + ["SYSTEM.NUM_WORKERS", "1"])
    assert workers.DATASET.ID == first.DATASET.ID  # how the work is done does not change the data
    recipe = load_config(None, opts + ["PRETRAIN.LEARNING_RATE", "0.002"])
    assert recipe.DATASET.ID == first.DATASET.ID and recipe.PRETRAIN.ID != first.PRETRAIN.ID
    longer = load_config(None, opts + ["PRETRAIN.NUM_STEPS", "46000", "PRETRAIN.TOTAL_TRAINING_HOURS", "48"])
    assert longer.PRETRAIN.ID == first.PRETRAIN.ID  # a longer horizon continues the same run
    (corpus / "b.txt").write_text("New text.\n", encoding="utf-8")
    assert load_config(None, opts).DATASET.ID != first.DATASET.ID


def test_unknown_key_is_named_with_a_suggestion(tmp_path, corpus):
    problems = _problems(tmp_path, f"DATASET:\n  CUSTOMIZED_DATASETS: [{corpus}]\n  MAX_SEQ_LEN: 64\n")
    assert problems == ["unknown config key DATASET.MAX_SEQ_LEN (did you mean DATASET.MAX_SEQ_LENGTH?)"]


def test_unknown_section_and_opts_key_are_errors(tmp_path, corpus):
    problems = _problems(tmp_path, "PRETRAINING:\n  NUM_STEPS: 3\n", "FINETUNE.SEED", "1")
    assert any("PRETRAINING" in p and "did you mean PRETRAIN" in p for p in problems)
    assert any("FINETUNE.SEED" in p and "FINETUNE.SEEDS" in p for p in problems)


def test_wrong_types_are_named(tmp_path):
    problems = _problems(tmp_path, "PRETRAIN:\n  NUM_STEPS: many\n  ENABLED: 3\nFINETUNE:\n  SEEDS: [1, x]\n")
    assert any(p.startswith("PRETRAIN.NUM_STEPS: expected an integer") for p in problems)
    assert any(p.startswith("PRETRAIN.ENABLED: expected true/false") for p in problems)
    assert any(p.startswith("FINETUNE.SEEDS[1]: expected an integer") for p in problems)


def test_every_problem_is_reported_at_once(tmp_path, corpus):
    problems = _problems(tmp_path, f"DATASET:\n  CUSTOMIZED_DATASETS: [{corpus}]\n  MASKED_LM_PROB: 1.5\n"
                                   "  FRAC_TEST: -0.1\nPRETRAIN:\n  SCHEDULER: stepwise\n  BATCH_SIZE: 32\n")
    assert any(p.startswith("DATASET.MASKED_LM_PROB = 1.5 is out of range (0, 1)") for p in problems)
    assert any(p.startswith("DATASET.FRAC_TEST = -0.1") for p in problems)
    assert any(p.startswith("PRETRAIN.SCHEDULER = 'stepwise' is not one of") for p in problems)


def test_batch_size_must_divide_into_micro_batches(tmp_path, corpus):
    problems = _problems(tmp_path, f"DATASET:\n  CUSTOMIZED_DATASETS: [{corpus}]\nSYSTEM:\n  NUM_GPUS: 0\n"
                                   "PRETRAIN:\n  BATCH_SIZE: 100\n  MICRO_BATCH_SIZE_PER_GPU: 32\n")
    assert any("PRETRAIN.BATCH_SIZE = 100 is not divisible" in p for p in problems)


def test_missing_corpus_folder_and_folder_without_txt(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("not a corpus")
    problems = _problems(tmp_path, f"DATASET:\n  CUSTOMIZED_DATASETS: [{tmp_path / 'nowhere'}, {empty}]\n")
    assert any("folder does not exist" in p and "nowhere" in p for p in problems)
    assert any("holds no .txt files" in p and str(empty) in p for p in problems)


def test_a_broken_txt_link_in_a_corpus_folder_is_named_before_any_work(tmp_path, corpus):
    (corpus / "gone.txt").symlink_to(tmp_path / "moved_away.txt")
    problems = _problems(tmp_path, f"DATASET:\n  CUSTOMIZED_DATASETS: [{corpus}]\n")
    assert problems == [f"DATASET.CUSTOMIZED_DATASETS: {corpus / 'gone.txt'} in corpus folder {corpus} is a broken"
                        f" symbolic link (to {tmp_path / 'moved_away.txt'}): fix or remove it"]


@pytest.mark.parametrize("text, problem", [
    (None, "config file not found: {path} (give a path to a YAML file, e.g. configs/quickstart.yaml)"),
    ("PRETRAIN:\n  NUM_STEPS: [1, 2\n", "malformed YAML in {path} at line 3, column 1: expected ',' or ']', but got"
                                         " '<stream end>'"),
    ("- PRETRAIN\n", "{path}: the top level of a config must be a mapping of sections, got list"),
], ids=["missing file", "syntax error", "top-level list"])
def test_a_config_file_that_cannot_be_read_is_its_only_problem(tmp_path, capsys, text, problem):
    path = tmp_path / "config.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    assert main.main(["--config", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"config error: {problem.format(path=path)}"]


def test_yaml_is_loaded_safely(tmp_path):
    marker = tmp_path / "pwned"
    text = f"PRETRAIN: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(_write_yaml(tmp_path, text))
    assert not marker.exists()


def test_main_reports_unknown_keys_together_with_range_and_input_problems(tmp_path, capsys):
    path = _write_yaml(tmp_path, "DATASET:\n  MAX_SEQ_LEN: 64\nPRETRAIN:\n  NUM_STEPS: 0\n")
    assert main.main(["--config", str(path)]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert "config error: unknown config key DATASET.MAX_SEQ_LEN (did you mean DATASET.MAX_SEQ_LENGTH?)" in err_lines
    assert "config error: PRETRAIN.NUM_STEPS = 0 is out of range [1, inf)" in err_lines
    assert any("the dataset stage has no input" in line for line in err_lines)
    assert len(err_lines) == 3


def test_inf_nan_and_a_zero_micro_batch_are_one_config_line_each_without_a_traceback(tmp_path, capsys):
    path = _write_yaml(tmp_path, "DATASET:\n  ENABLED: false\nPRETRAIN:\n  LEARNING_RATE: .inf\n"
                                 "  MICRO_BATCH_SIZE_PER_GPU: 0\nFINETUNE:\n  SEARCH:\n    SMALL:\n"
                                 "      LEARNING_RATES: [1.0e-5, .nan]\n  OWN_TASKS:\n    mine:\n"
                                 "      TRAIN_FILE: a.csv\n      VALIDATION_FILE: b.csv\n      LEARNING_RATES: [-1]\n")
    assert main.main(["--config", str(path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "config error: PRETRAIN.LEARNING_RATE = inf is out of range (0, inf): give a finite number",
        "config error: PRETRAIN.MICRO_BATCH_SIZE_PER_GPU = 0 is out of range [1, inf)",
        "config error: FINETUNE.SEARCH.SMALL.LEARNING_RATES = [1e-05, nan]: nan is out of range (0, inf): give a"
        " finite number",
        "config error: FINETUNE.OWN_TASKS.mine.LEARNING_RATES = [-1.0]: -1.0 is out of range (0, inf)"]


def test_main_exits_2_on_a_missing_config_file_in_a_real_process(tmp_path):
    result = subprocess.run([sys.executable, str(REPO_ROOT / "main.py"), "--config", str(tmp_path / "x.yaml")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert "config file not found" in result.stderr
