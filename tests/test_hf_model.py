"""The Hugging Face export: both LN modes round-trip through the Auto classes with the same MLM logits as our
model, load for sequence classification and regression, and ``import pretraining`` registers lazily."""
import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import (AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer,
                          BertForMaskedLM, BertTokenizerFast)

import pretraining
from pretraining.hf_model import save_final_model
from pretraining.modeling import BertForPreTraining, build_model_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(95)] + ["the", "cat"]
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab=str(path))
    assert len(tok) == 102  # padded to 128 inside the model
    return tok


def trained_looking_model(ln_mode, vocab_size):
    """A tiny model with every weight perturbed away from its initial value (biases and LayerNorms included), so
    a weight mapped to the wrong place could not go unnoticed."""
    torch.manual_seed(0)
    config = build_model_config("bert-tiny", vocab_size, encoder_ln_mode=ln_mode, hidden_act="gelu_new")
    model = BertForPreTraining(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval(), config


def inputs():
    gen = torch.Generator().manual_seed(3)
    input_ids = torch.randint(5, 102, (3, 12), generator=gen)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 7:] = 0
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 6:] = 1
    return dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)


@pytest.fixture(scope="module", params=["post-ln", "pre-ln"])
def exported(request, tokenizer, tmp_path_factory):
    model, config = trained_looking_model(request.param, len(tokenizer))
    folder = tmp_path_factory.mktemp(request.param) / "final_model"
    save_final_model(model, config, tokenizer, folder)
    return request.param, model, folder


def test_folder_has_config_weights_and_tokenizer(exported, tokenizer):
    ln_mode, _, folder = exported
    names = set(os.listdir(folder))
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    config = json.loads((folder / "config.json").read_text())
    assert config["vocab_size"] == len(tokenizer)  # the padding rows are dropped
    assert config["model_type"] == ("bert" if ln_mode == "post-ln" else "extremebert")
    assert len(AutoTokenizer.from_pretrained(folder)) == len(tokenizer)
    assert not [name for name in os.listdir(folder.parent) if name.startswith(".")]  # no temporary leftovers


def test_masked_lm_logits_equal_ours(exported):
    ln_mode, model, folder = exported
    hf_model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    if ln_mode == "post-ln":
        assert type(hf_model) is BertForMaskedLM  # stock transformers class, no custom code
        assert "auto_map" not in json.loads((folder / "config.json").read_text())
    batch = inputs()
    with torch.no_grad():
        ours = model.mlm_logits(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        theirs = hf_model(**batch).logits
    assert theirs.shape == ours.shape == (3, 12, 102)
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-5)


def test_sequence_classification_loads_and_trains(exported):
    _, _, folder = exported
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3, attn_implementation="sdpa")
    out = model(**inputs(), labels=torch.tensor([0, 2, 1]))
    assert out.logits.shape == (3, 3) and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.classifier.weight.grad.abs().sum() > 0
    encoder_grads = [p.grad for name, p in model.named_parameters() if "word" in name]
    assert encoder_grads and encoder_grads[0].abs().sum() > 0


def test_sequence_regression_with_one_label(exported):
    _, _, folder = exported
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1).eval()
    labels = torch.tensor([0.5, 3.0, 4.5])
    out = model(**inputs(), labels=labels)
    assert model.config.problem_type == "regression" and out.logits.shape == (3, 1)
    assert out.loss.item() == pytest.approx(torch.mean((out.logits.squeeze(-1) - labels) ** 2).item(), rel=1e-5)


def test_saving_again_replaces_the_folder_atomically(tokenizer, tmp_path):
    folder = tmp_path / "final_model"
    for ln_mode in ("pre-ln", "post-ln"):
        model, config = trained_looking_model(ln_mode, len(tokenizer))
        save_final_model(model, config, tokenizer, folder)
        assert json.loads((folder / "config.json").read_text())["model_type"] == \
            ("bert" if ln_mode == "post-ln" else "extremebert")
    assert os.listdir(tmp_path) == ["final_model"]


def test_register_auto_classes_is_idempotent():
    pretraining.register_auto_classes()
    pretraining.register_auto_classes()


def test_import_pretraining_is_light_and_registers_when_transformers_loads(tmp_path, tokenizer):
    model, config = trained_looking_model("pre-ln", len(tokenizer))
    save_final_model(model, config, tokenizer, tmp_path / "m")
    script = (
        "import sys; import pretraining\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'import pretraining is heavy'\n"
        "from transformers import AutoModelForMaskedLM\n"
        f"model = AutoModelForMaskedLM.from_pretrained({str(tmp_path / 'm')!r})\n"
        "print(type(model).__name__)\n"
    )
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "ExtremeBertForMaskedLM"


def test_unsupported_inputs_are_refused_with_a_message(exported):
    ln_mode, _, folder = exported
    if ln_mode == "post-ln":
        pytest.skip("stock BERT handles position_ids itself")
    model = AutoModelForMaskedLM.from_pretrained(folder)
    batch = inputs()
    with pytest.raises(ValueError, match="position_ids is not supported"):
        model(**batch, position_ids=torch.arange(12).expand(3, 12))
