"""Starting weights (PRETRAIN.INIT_FROM): each kind of checkpoint a user starts from, built tiny in tmp_path with
transformers' own classes or our export, loads into our model and computes what the original computes; the config
follows the checkpoint's architecture and tokenizer; what does not fit is one line naming the key or tensor."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizerFast

from pipeline.errors import ConfigError, DataError
from pipeline.init_checkpoint import StartingCheckpoint
from pretraining.hf_model import save_final_model
from pretraining.import_weights import read_initial_weights
from pretraining.modeling import BertForPreTraining, build_model_config, model_config_from_cfg
from tests.pretrain_fixtures import write_tokenizer
from tests.test_pretrain_stage import tiny_config

SHAPE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             max_position_embeddings=64)  # what tiny_config's MODEL keys describe
TEXTS = ["w1 w2 [MASK] w4 w5 w6", "w7 [MASK]"]


def perturbed(model):
    """Every weight moved off its initial value (biases, LayerNorms), so that a weight mapped to the wrong place
    shows in the outputs."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def stock_folder(folder, model_class, hidden_act="gelu"):
    """A stock transformers BERT (``BertForMaskedLM`` or ``BertModel``) saved with its tokenizer."""
    write_tokenizer(folder)
    tokenizer = BertTokenizerFast.from_pretrained(folder)
    config = BertConfig(vocab_size=len(tokenizer), hidden_act=hidden_act, **SHAPE)
    model = perturbed(model_class(config))
    model.save_pretrained(folder)
    return model, tokenizer


def sentence_transformers_folder(root, module_path):
    """A sentence-transformers layout: modules.json naming the Transformer module's folder (``""`` = the top level,
    as the all-MiniLM-L6-v2 package ships it), a pooling module beside it."""
    encoder, tokenizer = stock_folder(root / module_path if module_path else root, BertModel)
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    modules = [{"idx": 0, "name": "0", "path": module_path, "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    (root / "modules.json").write_text(json.dumps(modules))
    return encoder, tokenizer


def resolved(tmp_path, *opts):
    """A config of tiny_config's MODEL keys with the pretrain stage off (so that no samples are needed)."""
    return tiny_config(tmp_path, "PRETRAIN.ENABLED", "False", *opts)


def loaded(tmp_path, init_from):
    """Our model filled from ``init_from`` as a pipeline run would: the config resolved (architecture and tokenizer
    from the checkpoint), then the weights."""
    cfg = resolved(tmp_path, "PRETRAIN.INIT_FROM", str(init_from))
    tokenizer = BertTokenizerFast.from_pretrained(cfg.TOKENIZER.NAME_OR_PATH)
    config = model_config_from_cfg(cfg, len(tokenizer))
    initial = read_initial_weights(StartingCheckpoint.locate(str(init_from), with_weights=True), config, tokenizer)
    torch.manual_seed(0)
    model = BertForPreTraining(config)
    initial.apply(model)
    return cfg, model.eval(), initial


def test_a_stock_bert_masked_lm_loads_with_its_head_and_gives_the_same_logits(tmp_path):
    original, tokenizer = stock_folder(tmp_path / "bert", BertForMaskedLM, hidden_act="gelu_new")
    cfg, model, initial = loaded(tmp_path, tmp_path / "bert")
    assert (cfg.MODEL.ENCODER_LN_MODE, cfg.MODEL.HIDDEN_ACT) == ("post-ln", "gelu_new")  # from the checkpoint
    assert cfg.TOKENIZER.NAME_OR_PATH == str(tmp_path / "bert") and not initial.head_initialised
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = model.mlm_logits(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        theirs = original(**batch).logits
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("module_path", ["", "0_Transformer"])
def test_a_sentence_transformers_encoder_loads_and_its_missing_head_is_initialised(tmp_path, module_path):
    encoder, tokenizer = sentence_transformers_folder(tmp_path / "st", module_path)
    cfg, model, initial = loaded(tmp_path, tmp_path / "st")
    assert cfg.TOKENIZER.NAME_OR_PATH == str(tmp_path / "st" / module_path).rstrip("/")
    assert initial.head_initialised and "it has no MLM head: the head is initialised" in initial.describe()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = model.encode(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        theirs = encoder(**batch).last_hidden_state
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert torch.all(model.head.bias == 0) and torch.all(model.head.norm.weight == 1)


def test_our_own_pre_ln_export_loads_back_exactly(tmp_path):
    tokenizer = BertTokenizerFast.from_pretrained(write_tokenizer(tmp_path / "tokenizer"))
    config = build_model_config("bert-tiny", len(tokenizer), encoder_ln_mode="pre-ln", **SHAPE)
    exported = perturbed(BertForPreTraining(config))
    save_final_model(exported, config, tokenizer, tmp_path / "final_model")
    cfg, model, _ = loaded(tmp_path, tmp_path / "final_model")
    assert cfg.MODEL.ENCODER_LN_MODE == "pre-ln" and cfg.MODEL.MAX_POSITION_EMBEDDINGS == 64
    rows = len(tokenizer)  # the export drops the vocabulary padding rows
    for name, tensor in exported.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name][:rows], tensor[:rows], rtol=0, atol=0, msg=name)


def test_a_model_key_that_contradicts_the_checkpoint_and_a_trained_tokenizer_are_config_errors(tmp_path):
    stock_folder(tmp_path / "bert", BertForMaskedLM)
    with pytest.raises(ConfigError) as error:
        resolved(tmp_path, "PRETRAIN.INIT_FROM", str(tmp_path / "bert"), "MODEL.NUM_HIDDEN_LAYERS", "4",
                 "TOKENIZER.TRAIN", "True")
    problems = error.value.problems
    assert any(p.startswith("MODEL.NUM_HIDDEN_LAYERS = 4 contradicts PRETRAIN.INIT_FROM") and "has 2" in p
               for p in problems)
    assert any(p.startswith("TOKENIZER.TRAIN = True contradicts PRETRAIN.INIT_FROM") for p in problems)
    with pytest.raises(ConfigError, match="TOKENIZER.NAME_OR_PATH = bert-large-uncased contradicts"):
        resolved(tmp_path, "PRETRAIN.INIT_FROM", str(tmp_path / "bert"), "TOKENIZER.NAME_OR_PATH",
                    "bert-large-uncased")
    (tmp_path / "bert" / "config.json").write_text(json.dumps({**BertConfig(**SHAPE).to_dict(),
                                                               "model_type": "roberta"}))
    with pytest.raises(ConfigError, match="is a 'roberta' model; this model is BERT"):
        resolved(tmp_path, "PRETRAIN.INIT_FROM", str(tmp_path / "bert"))


def test_a_tensor_that_does_not_fit_is_named_in_one_line(tmp_path):
    stock_folder(tmp_path / "bert", BertForMaskedLM)
    weights = tmp_path / "bert" / "model.safetensors"
    state = load_file(weights)
    name = "bert.encoder.layer.1.output.dense.weight"
    save_file({**state, name: torch.zeros(32, 60)}, weights)
    with pytest.raises(DataError) as error:
        loaded(tmp_path, tmp_path / "bert")
    assert str(error.value) == (f"PRETRAIN.INIT_FROM: {tmp_path / 'bert'} tensor '{name}' has shape [32, 60] but this"
                                f" model needs [32, 64] for encoder.layers.1.ffn.down.weight")
    del state[name]
    save_file(state, weights)
    with pytest.raises(DataError, match=f"has no tensor '{name}' \\(needed for encoder.layers.1.ffn.down.weight\\)"):
        loaded(tmp_path, tmp_path / "bert")


def test_samples_made_with_another_tokenizer_are_refused(tmp_path):
    stock_folder(tmp_path / "bert", BertForMaskedLM)
    vocab = tmp_path / "other_vocab.txt"
    vocab.write_text((tmp_path / "bert" / "vocab.txt").read_text().replace("\nw3\n", "\nzz\n"))
    other = BertTokenizerFast(vocab=str(vocab))
    config = build_model_config("bert-tiny", len(other), encoder_ln_mode="post-ln", **SHAPE)
    with pytest.raises(DataError, match="is not the samples' tokenizer: its token 'w3' is id 9 there and None here"):
        read_initial_weights(StartingCheckpoint.locate(str(tmp_path / "bert"), with_weights=True), config, other)


def test_a_hub_name_is_read_from_the_hub_cache_offline_and_one_that_is_not_there_is_one_line(tmp_path, monkeypatch):
    import huggingface_hub.constants

    snapshot = tmp_path / "hub" / "models--tiny-org--tiny-bert" / "snapshots" / ("0" * 40)
    original, _ = stock_folder(snapshot, BertForMaskedLM)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    cfg = resolved(tmp_path, "PRETRAIN.INIT_FROM", "tiny-org/tiny-bert")
    assert cfg.PRETRAIN.INIT_FROM == "tiny-org/tiny-bert" and cfg.TOKENIZER.NAME_OR_PATH == "tiny-org/tiny-bert"
    assert cfg.MODEL.ENCODER_LN_MODE == "post-ln"
    checkpoint = StartingCheckpoint.locate("tiny-org/tiny-bert", with_weights=True)
    tokenizer = BertTokenizerFast.from_pretrained(checkpoint.folder)
    initial = read_initial_weights(checkpoint, model_config_from_cfg(cfg, len(tokenizer)), tokenizer)
    torch.testing.assert_close(initial.tensors["encoder.embeddings.word.weight"],
                               original.bert.embeddings.word_embeddings.weight.detach())
    with pytest.raises(ConfigError, match="PRETRAIN.INIT_FROM: cannot fetch hub model 'tiny-org/absent': .*; give a"
                                          " local model folder or go online"):
        resolved(tmp_path, "PRETRAIN.INIT_FROM", "tiny-org/absent")


def test_a_starting_checkpoint_trained_further_makes_a_new_run_on_the_same_dataset(tmp_path):
    import os

    stock_folder(tmp_path / "phase1", BertForMaskedLM)
    opts = ("PRETRAIN.INIT_FROM", str(tmp_path / "phase1"), "DATASET.ID", "''")  # the dataset ID derived
    before = resolved(tmp_path, *opts)
    for path in (tmp_path / "phase1").iterdir():  # rewritten as an export rewrites it: the same tokenizer files
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10 ** 9))
    after = resolved(tmp_path, *opts)
    assert after.DATASET.ID == before.DATASET.ID and after.PRETRAIN.ID != before.PRETRAIN.ID
