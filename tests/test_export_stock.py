"""The final_model export: stock ``bert`` (post-LN) and ``roberta-prelayernorm`` (pre-LN) folders that a Python
without this repository opens, with our MLM logits on padded sentence pairs; finetuning heads on top; the
conversion of folders of the old ``extremebert`` format and the loader's message for them."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModelForSequenceClassification, BertTokenizerFast

from finetuning.glue_tasks import get_task
from finetuning.job_run import load_model, load_tokenizer
from pipeline.errors import DataError
from pretraining.convert_checkpoint import main as convert_main
from pretraining.export_stock import SHARED_FIELDS, offset_position_table, split_qkv
from pretraining.hf_model import export_state_dict, save_final_model
from pretraining.modeling import BertForPreTraining, build_model_config

# [PAD] is not id 0 here, so a position offset that assumed it would show.
VOCAB = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"] + [f"w{i}" for i in range(95)] + ["the", "cat"]
PAD_ID = 3
PAIRS = [("w1 w2 [MASK] w4 w5 w6 w7", "w8 w9"), ("the cat", "w3"), ("w10", "w11 [MASK] w13 w14")]
FILL_MASK_TEXT = "w1 w2 [MASK] w4"

# post-LN with gelu_new: stock BERT's MLM head follows hidden_act. pre-LN with gelu: roberta-prelayernorm's head
# always applies GELU (another activation is the warning test below).
ACTIVATION = {"post-ln": "gelu_new", "pre-ln": "gelu"}
STOCK = {"post-ln": ("bert", "BertForMaskedLM", "BertForSequenceClassification"),
         "pre-ln": ("roberta-prelayernorm", "RobertaPreLayerNormForMaskedLM",
                    "RobertaPreLayerNormForSequenceClassification")}


# Run with `python -I` in tmp_path: neither the working directory nor sys.path holds this repository.
OPEN_WITHOUT_REPOSITORY = """
import importlib.util, json, sys, torch
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer, pipeline
assert importlib.util.find_spec("pretraining") is None, "the repository is importable"
pairs, fill_mask_text = json.loads(sys.argv[1]), sys.argv[2]
report = {}
for folder in sys.argv[3:]:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")
    mlm = AutoModelForMaskedLM.from_pretrained(folder).eval()
    classifier = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3).eval()
    with torch.no_grad():
        logits = mlm(**batch).logits
        classes = classifier(**batch).logits
    predictions = pipeline("fill-mask", model=folder, top_k=2)(fill_mask_text)
    report[folder] = dict(tokenizer=type(tokenizer).__name__, mlm=type(mlm).__name__,
                          classifier=type(classifier).__name__, batch=dict(batch), logits=logits,
                          class_logits_shape=tuple(classes.shape), fill_mask=predictions)
torch.save(report, "report.pt")
"""


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n")
    tok = BertTokenizerFast(vocab=str(path))
    assert len(tok) == 102 and tok.pad_token_id == PAD_ID  # padded to 128 inside the model
    return tok


def trained_looking_model(ln_mode, vocab_size, hidden_act):
    """A tiny model with every weight perturbed away from its initial value (biases and LayerNorms included), so
    a weight mapped to the wrong place could not go unnoticed."""
    torch.manual_seed(0)
    config = build_model_config("bert-tiny", vocab_size, encoder_ln_mode=ln_mode, hidden_act=hidden_act)
    model = BertForPreTraining(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval(), config


@pytest.fixture(scope="module")
def exported(tokenizer, tmp_path_factory):
    """{ln_mode: (our model, its final_model folder)}."""
    folders = {}
    for ln_mode in ("post-ln", "pre-ln"):
        model, config = trained_looking_model(ln_mode, len(tokenizer), ACTIVATION[ln_mode])
        folder = tmp_path_factory.mktemp(ln_mode) / "final_model"
        save_final_model(model, config, tokenizer, folder)
        folders[ln_mode] = (model, folder)
    return folders


def pair_batch(tokenizer):
    """PAIRS as one right-padded batch with token_type_ids."""
    return tokenizer([a for a, _ in PAIRS], [b for _, b in PAIRS], padding=True, return_tensors="pt")


def our_logits(model, batch):
    with torch.no_grad():
        return model.mlm_logits(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])


@pytest.mark.parametrize("ln_mode", ["post-ln", "pre-ln"])
def test_folder_is_a_stock_model_with_the_wordpiece_tokenizer(exported, tokenizer, ln_mode):
    _, folder = exported[ln_mode]
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(os.listdir(folder))
    config = json.loads((folder / "config.json").read_text())
    model_type, masked_lm, _ = STOCK[ln_mode]
    assert config["model_type"] == model_type and config["architectures"] == [masked_lm]
    assert "auto_map" not in config  # no custom code
    assert config["vocab_size"] == len(tokenizer)  # the padding rows are dropped
    assert config["type_vocab_size"] == 2 and config["pad_token_id"] == PAD_ID
    # RoBERTa counts positions from pad_token_id + 1: the table grows by that many rows.
    assert config["max_position_embeddings"] == 512 + (PAD_ID + 1 if ln_mode == "pre-ln" else 0)
    assert json.loads((folder / "tokenizer_config.json").read_text())["tokenizer_class"] == "BertTokenizer"
    assert not [name for name in os.listdir(folder.parent) if name.startswith(".")]  # no temporary leftovers


def test_export_opens_without_the_repository(exported, tokenizer, tmp_path):
    folders = [str(exported[ln_mode][1]) for ln_mode in ("post-ln", "pre-ln")]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    result = subprocess.run([sys.executable, "-I", "-c", OPEN_WITHOUT_REPOSITORY, json.dumps(PAIRS), FILL_MASK_TEXT,
                             *folders], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = torch.load(tmp_path / "report.pt", weights_only=False)
    for ln_mode, folder in zip(("post-ln", "pre-ln"), folders):
        model, _ = exported[ln_mode]
        seen = report[folder]
        _, masked_lm, classifier = STOCK[ln_mode]
        assert (seen["mlm"], seen["classifier"]) == (masked_lm, classifier)
        assert seen["tokenizer"].startswith("BertTokenizer") and seen["class_logits_shape"] == (3, 3)
        batch = seen["batch"]
        real = batch["attention_mask"].bool()
        assert not real.all() and batch["token_type_ids"].any()  # padded, and the pairs' second segments are 1s
        ours = our_logits(model, batch)
        assert seen["logits"].shape == ours.shape == (3, real.shape[1], len(tokenizer))
        # Padding positions are masked out of attention: their own outputs mean nothing, in either model.
        torch.testing.assert_close(seen["logits"][real], ours[real], rtol=0, atol=1e-5)
        fill = tokenizer(FILL_MASK_TEXT, return_tensors="pt")
        at_mask = fill["input_ids"][0] == tokenizer.mask_token_id
        probabilities = our_logits(model, fill)[0, at_mask][0].softmax(-1)
        best = probabilities.topk(2)
        assert [p["token"] for p in seen["fill_mask"]] == best.indices.tolist()
        assert [p["score"] for p in seen["fill_mask"]] == pytest.approx(best.values.tolist(), abs=1e-5)


def test_position_table_is_offset_by_pad_id_plus_one():
    table = torch.randn(8, 4)
    shifted = offset_position_table(table, pad_token_id=3)
    assert shifted.shape == (12, 4)
    assert torch.equal(shifted[4:], table) and not shifted[:4].any()


def test_fused_qkv_splits_in_the_order_attention_reads_it():
    fused = torch.arange(6 * 2).reshape(6, 2)
    parts = split_qkv(fused)
    assert [parts[name][:, 0].tolist() for name in ("query", "key", "value")] == [[0, 2], [4, 6], [8, 10]]


@pytest.mark.parametrize("ln_mode", ["post-ln", "pre-ln"])
def test_sequence_classification_loads_and_trains(exported, tokenizer, ln_mode):
    _, folder = exported[ln_mode]
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3, attn_implementation="sdpa")
    batch = pair_batch(tokenizer)
    out = model(**batch, labels=torch.tensor([0, 2, 1]))
    assert out.logits.shape == (3, 3) and torch.isfinite(out.loss)
    out.loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert any(g.abs().sum() > 0 for name, g in grads.items() if name.startswith("classifier"))
    assert grads[f"{model.base_model_prefix}.embeddings.word_embeddings.weight"].abs().sum() > 0


def test_sequence_regression_with_one_label(exported, tokenizer):
    _, folder = exported["pre-ln"]
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1).eval()
    labels = torch.tensor([0.5, 3.0, 4.5])
    batch = pair_batch(tokenizer)
    out = model(**batch, labels=labels)
    assert model.config.problem_type == "regression" and out.logits.shape == (3, 1)
    assert out.loss.item() == pytest.approx(torch.mean((out.logits.squeeze(-1) - labels) ** 2).item(), rel=1e-5)


def test_saving_again_replaces_the_folder_atomically(tokenizer, tmp_path):
    folder = tmp_path / "final_model"
    for ln_mode in ("pre-ln", "post-ln"):
        model, config = trained_looking_model(ln_mode, len(tokenizer), "gelu")
        save_final_model(model, config, tokenizer, folder)
        assert json.loads((folder / "config.json").read_text())["model_type"] == STOCK[ln_mode][0]
    assert os.listdir(tmp_path) == ["final_model"]


def test_pre_ln_with_another_activation_warns_and_keeps_the_encoder_exact(tokenizer, tmp_path):
    from transformers import AutoModel

    model, config = trained_looking_model("pre-ln", len(tokenizer), "gelu_new")
    with pytest.warns(UserWarning, match="MLM head applies gelu"):
        save_final_model(model, config, tokenizer, tmp_path / "m")
    batch = pair_batch(tokenizer)
    with torch.no_grad():
        theirs = AutoModel.from_pretrained(tmp_path / "m").eval()(**batch).last_hidden_state
        ours = model.encode(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(theirs[real], ours[real], rtol=0, atol=1e-5)


def write_old_format(model, config, tokenizer, folder):
    """A pre-LN final_model as the old export wrote it: model type ``extremebert``, our parameter names with the
    encoder under ``bert.`` and the MLM head as ``cls.``."""
    folder.mkdir(parents=True)
    state = export_state_dict(model, config)
    save_file({("bert." + name if name.startswith("encoder.") else "cls." + name.split(".", 1)[1]): tensor
               for name, tensor in state.items()}, folder / "model.safetensors")
    old_config = {name: getattr(config, name) for name in (*SHARED_FIELDS, "encoder_ln_mode")}
    old_config.update(model_type="extremebert", architectures=["ExtremeBertForMaskedLM"], pad_token_id=PAD_ID,
                      vocab_size=len(tokenizer), tie_word_embeddings=True)
    (folder / "config.json").write_text(json.dumps(old_config))
    tokenizer.save_pretrained(folder)


def test_an_old_format_folder_is_refused_by_the_loaders_with_the_command_that_converts_it(tokenizer, tmp_path):
    model, config = trained_looking_model("pre-ln", len(tokenizer), "gelu")
    old = tmp_path / "final_model"
    write_old_format(model, config, tokenizer, old)
    command = re.escape(f"python -m pretraining.convert_checkpoint {old} NEW_DIR")
    with pytest.raises(DataError, match=command):
        load_tokenizer(str(old))
    with pytest.raises(DataError, match=command):
        load_model(str(old), get_task("rte"))


def test_an_old_format_folder_converts_to_stock_with_the_same_logits(tokenizer, tmp_path):
    from transformers import AutoModelForMaskedLM

    model, config = trained_looking_model("pre-ln", len(tokenizer), "gelu")
    old = tmp_path / "final_model"
    write_old_format(model, config, tokenizer, old)
    assert convert_main([str(old), str(old)]) == 0  # in place
    assert json.loads((old / "config.json").read_text())["model_type"] == "roberta-prelayernorm"
    assert "| vocabulary | " in (old / "README.md").read_text()  # a re-exported folder gets its card too
    batch = pair_batch(load_tokenizer(str(old)))
    with torch.no_grad():
        theirs = AutoModelForMaskedLM.from_pretrained(old).eval()(**batch).logits
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(theirs[real], our_logits(model, batch)[real], rtol=0, atol=1e-5)


def test_converting_refuses_a_folder_not_of_the_old_format_and_a_target_holding_something(exported, tokenizer,
                                                                                          tmp_path, capsys):
    _, stock = exported["pre-ln"]
    assert convert_main([str(stock), str(tmp_path / "new")]) == 1
    assert "is not a model folder of the old format" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    model, config = trained_looking_model("pre-ln", len(tokenizer), "gelu")
    write_old_format(model, config, tokenizer, tmp_path / "old")
    assert convert_main([str(tmp_path / "old"), str(stock)]) == 1
    assert "exists and is not empty" in capsys.readouterr().err
    assert json.loads((stock / "config.json").read_text())["model_type"] == "roberta-prelayernorm"
