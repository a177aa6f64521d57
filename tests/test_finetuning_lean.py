"""make_lean: the first-token-only last layer and the cheaper CPU dropout change the cost, not the model."""
import copy

import pytest
import torch

from finetuning.lean_model import ATTENTION, make_lean


def _classifier(kind: str, dropout: float = 0.0):
    from transformers import (BertConfig, BertForSequenceClassification, RobertaPreLayerNormConfig,
                              RobertaPreLayerNormForSequenceClassification)

    config_class, model_class = {"bert": (BertConfig, BertForSequenceClassification), "pre-ln": (
        RobertaPreLayerNormConfig, RobertaPreLayerNormForSequenceClassification)}[kind]
    torch.manual_seed(0)
    config = config_class(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=64, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                          num_labels=3, pad_token_id=0, max_position_embeddings=40)
    return model_class(config)


def _batch():
    ids = torch.randint(5, 60, (4, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # padded rows: the first token must ignore the padding keys
    mask[2, 2:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 2, 1])}


@pytest.mark.parametrize("kind", ["bert", "pre-ln"])
def test_lean_model_gives_the_same_logits_loss_and_gradients(kind):
    stock = _classifier(kind)
    lean = copy.deepcopy(stock)
    applied = make_lean(lean)
    assert applied[0] == "last layer on the first token only"
    batch = _batch()
    logits = []
    for model in (stock, lean):
        model.train()
        output = model(**batch)
        output.loss.backward()
        logits.append(output.logits)
    torch.testing.assert_close(logits[1], logits[0], rtol=1e-5, atol=1e-6)
    for (name, a), (_, b) in zip(stock.named_parameters(), lean.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)
    lean.eval()
    with torch.no_grad():
        torch.testing.assert_close(lean(**batch).logits, stock.eval()(**batch).logits, rtol=1e-5, atol=1e-6)


def test_lean_model_saves_and_reloads_as_the_stock_model(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = _classifier("bert", dropout=0.1)
    make_lean(model)
    assert model.config._attn_implementation == ATTENTION
    model.save_pretrained(tmp_path)
    assert "extremebert" not in (tmp_path / "config.json").read_text()
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config._attn_implementation == "sdpa"
    batch = _batch()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model.eval()(**batch).logits)


def test_training_mode_drops_attention_and_hidden_units_and_evaluation_does_not():
    model = _classifier("bert", dropout=0.3)
    make_lean(model)
    batch = _batch()
    model.eval()
    with torch.no_grad():
        first, second = model(**batch).logits, model(**batch).logits
        assert torch.equal(first, second)
        model.train()
        assert not torch.allclose(model(**batch).logits, model(**batch).logits)


def test_a_model_of_another_kind_keeps_its_layers_and_still_gets_the_cheaper_dropout():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    model = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=60, dim=32, n_layers=1, n_heads=2,
                                                                 hidden_dim=64, max_position_embeddings=40))
    applied = make_lean(model)
    assert "last layer on the first token only" not in applied
    assert any(name.startswith("cheaper CPU dropout masks") for name in applied)
    batch = _batch()
    del batch["labels"]
    model.eval()
    assert model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.shape == (4, 2)
