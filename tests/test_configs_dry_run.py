"""Every shipped config passes validation and prints a plan with --dry-run, without doing any work. main.main runs
in this process: a subprocess per config would spend most of its time importing torch again."""
import json
from pathlib import Path

import pytest

from main import main

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.name for p in (REPO_ROOT / "configs").glob("*.yaml"))


def test_the_documented_configs_exist():
    assert {"quickstart.yaml", "bert-base.yaml", "bert-large.yaml", "bert-customized.yaml", "data-preprocess.yaml",
            "train.yaml", "own-tasks.yaml"} <= set(CONFIGS)


def phase_one_stand_in(folder):
    """What the config check reads of a phase-1 final_model (a pre-LN BERT-Base export): config.json, a weights file
    and the tokenizer files."""
    folder.mkdir()
    config = {"model_type": "roberta-prelayernorm", "hidden_size": 768, "num_hidden_layers": 12,
              "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
              "max_position_embeddings": 513, "pad_token_id": 0}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n")
    return folder


@pytest.mark.parametrize("name", CONFIGS)
def test_config_dry_run_validates_and_prints_the_plan(name, tmp_path, monkeypatch, capsys, quickstart_demo_dir):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "notes.txt").write_text("A first article.\n\nA second article.\n", encoding="utf-8")
    opts = ["SYSTEM.OUTPUT_ROOT", str(tmp_path / "runs"), "DEMO_DATA.OUTPUT_DIR", str(quickstart_demo_dir)]
    if name == "bert-customized.yaml":  # its corpus folder is a placeholder for the user's own
        opts += ["DATASET.CUSTOMIZED_DATASETS", f"[{corpus}]"]
    if name == "quickstart.yaml":  # its corpus and tasks are the demo data it builds
        opts += ["DATASET.CUSTOMIZED_DATASETS", f"[{quickstart_demo_dir / 'corpus'}]",
                 "FINETUNE.GLUE_DIR", str(quickstart_demo_dir / "glue")]
    if name == "own-tasks.yaml":  # its task files are in the demo data's own/ folder, under runs/demo_data/
        (tmp_path / "runs").mkdir()
        (tmp_path / "runs" / "demo_data").symlink_to(quickstart_demo_dir)
    if name == "train.yaml":  # step 2 of 2 expects the samples that data-preprocess.yaml prepared
        (tmp_path / "runs" / "datasets" / "wikipedia-bookcorpus-128" / "samples").mkdir(parents=True)
    if name == "bert-base-two-phase-2.yaml":  # phase 2 starts from phase 1's final_model: a stand-in of its files
        opts += ["PRETRAIN.INIT_FROM", str(phase_one_stand_in(tmp_path / "phase1_final_model"))]
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the working directory, as for a user
    code = main(["--config", str(REPO_ROOT / "configs" / name), "--dry-run", "--opts", *opts])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "Plan:" in printed.out
    assert "ID:" in printed.out  # the resolved config, with its automatic IDs
    assert not (tmp_path / "runs" / "runs").exists()  # a dry run writes nothing into the run folders
