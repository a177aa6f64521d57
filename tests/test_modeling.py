"""The pretraining model: shapes, the sparse MLM path against the dense one, padding, initialisation, vocabulary
padding, weight tying, configuration, and that it learns."""
import pytest
import torch
import torch.nn.functional as F

from pipeline.defaults import get_default_config
from pretraining.modeling import (PRESETS, BertForPreTraining, build_model_config, describe,
                                  maybe_compile, model_config_from_cfg, padded_vocab_size, parameter_count,
                                  pretraining_flops_per_sample)

VOCAB = 1000  # padded to 1024


def tiny_model(ln_mode="pre-ln", **overrides):
    torch.manual_seed(0)
    return BertForPreTraining(build_model_config("bert-tiny", VOCAB, encoder_ln_mode=ln_mode, **overrides))


def batch(batch_size=4, seq_len=16, seed=1):
    """Ids in the tokenizer's range, sequence 1 padded after 10 tokens, a few labels per sequence (one padded)."""
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, VOCAB, (batch_size, seq_len), generator=gen)
    attention_mask = torch.ones(batch_size, seq_len, dtype=torch.long)
    attention_mask[1, 10:] = 0
    input_ids[1, 10:] = 0
    labels = torch.full((batch_size, seq_len), -100)
    for row, positions in enumerate([[3, 7], [1, 9], [15], [2, 4, 5, 11]][:batch_size]):
        labels[row, positions] = torch.randint(5, VOCAB, (len(positions),), generator=gen)
    return input_ids, attention_mask, labels


@pytest.mark.parametrize("ln_mode", ["pre-ln", "post-ln"])
def test_shapes(ln_mode):
    model = tiny_model(ln_mode).eval()
    input_ids, attention_mask, labels = batch()
    assert model.encode(input_ids, attention_mask).shape == (4, 16, 128)
    assert model.mlm_logits(input_ids, attention_mask).shape == (4, 16, VOCAB)
    loss = model(input_ids, attention_mask, labels)
    assert loss.shape == () and torch.isfinite(loss)


@pytest.mark.parametrize("ln_mode", ["pre-ln", "post-ln"])
def test_sparse_loss_equals_dense_head_at_the_labelled_positions(ln_mode):
    model = tiny_model(ln_mode).eval()
    input_ids, attention_mask, labels = batch()
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 8:] = 1
    dense_logits = model.mlm_logits(input_ids, attention_mask, token_type_ids)
    expected = F.cross_entropy(dense_logits.reshape(-1, VOCAB), labels.reshape(-1))
    assert model(input_ids, attention_mask, labels, token_type_ids).item() == pytest.approx(expected.item(), rel=1e-5)


def test_sparse_gradients_equal_dense_gradients():
    model = tiny_model("pre-ln").eval()
    input_ids, attention_mask, labels = batch()
    model(input_ids, attention_mask, labels).backward()
    sparse_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    F.cross_entropy(model.mlm_logits(input_ids, attention_mask).reshape(-1, VOCAB), labels.reshape(-1)).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(sparse_grads[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("ln_mode", ["pre-ln", "post-ln"])
def test_padding_mask_hides_padded_tokens(ln_mode):
    model = tiny_model(ln_mode).eval()
    input_ids, attention_mask, _ = batch()
    hidden = model.encode(input_ids, attention_mask)
    changed = input_ids.clone()
    changed[1, 10:] = 77  # garbage in the padded tail must not change the real tokens' states
    torch.testing.assert_close(model.encode(changed, attention_mask)[1, :10], hidden[1, :10])
    alone = model.encode(input_ids[1:2, :10], attention_mask[1:2, :10])  # the same sequence without padding
    torch.testing.assert_close(alone[0], hidden[1, :10], rtol=1e-5, atol=1e-5)
    unmasked = model.encode(changed, torch.ones_like(attention_mask))
    assert not torch.allclose(unmasked[1, :10], hidden[1, :10])


def test_dropout_only_in_training():
    model = tiny_model()
    input_ids, attention_mask, labels = batch()
    model.eval()
    assert model(input_ids, attention_mask, labels).item() == model(input_ids, attention_mask, labels).item()
    model.train()
    assert model(input_ids, attention_mask, labels).item() != model(input_ids, attention_mask, labels).item()


def test_every_linear_and_embedding_starts_from_n_0_002():
    torch.manual_seed(0)
    model = BertForPreTraining(build_model_config("bert-mini", 5000))
    weights = {name: p for name, p in model.named_parameters() if p.dim() == 2}
    assert len(weights) == 3 + 4 * 4 + 1  # 3 embeddings, 4 linears x 4 layers, head dense
    for name, weight in weights.items():
        assert weight.std().item() == pytest.approx(0.02, rel=0.05), name
        assert abs(weight.mean().item()) < 2e-3, name
    for name, p in model.named_parameters():
        if p.dim() == 1:  # biases 0, LayerNorm gains 1
            expected = 1.0 if "norm.weight" in name else 0.0
            assert torch.all(p == expected), name


def test_vocabulary_is_padded_to_a_multiple_of_64_and_padding_rows_are_never_trained():
    assert [padded_vocab_size(n) for n in (1, 64, 65, 1000, 30522)] == [64, 64, 128, 1024, 30528]
    model = tiny_model()
    assert model.config.vocab_size == 1024 and model.config.tokenizer_vocab_size == VOCAB
    assert model.encoder.embeddings.word.weight.shape == (1024, 128)
    model(*batch()).backward()
    grad = model.encoder.embeddings.word.weight.grad
    assert torch.all(grad[VOCAB:] == 0)  # neither inputs nor softmax columns
    assert torch.all(model.head.bias.grad[VOCAB:] == 0)
    assert grad[:VOCAB].abs().sum() > 0


def test_decoder_is_tied_to_the_word_embeddings():
    model = tiny_model()
    names = [name for name, _ in model.named_parameters()]
    assert "encoder.embeddings.word.weight" in names and not any("decoder" in name for name in names)
    with torch.no_grad():
        model.encoder.embeddings.word.weight[42].zero_()
        model.head.bias.zero_()
    logits = model.eval().mlm_logits(*batch()[:2])
    assert torch.all(logits[..., 42] == 0)  # the decoder row is the (zeroed) embedding row


@pytest.mark.parametrize("ln_mode", ["pre-ln", "post-ln"])
def test_the_parameter_count_from_the_shape_is_the_built_models(ln_mode):
    model = tiny_model(ln_mode)
    built = sum(p.numel() for p in model.parameters())  # a tied tensor is listed once
    assert parameter_count(model.config) == built
    assert describe(model.config).endswith(f"({built / 1e6:.1f}M parameters)")


def test_a_batch_without_labels_gives_zero_loss_with_a_graph():
    model = tiny_model()
    input_ids, attention_mask, labels = batch()
    loss = model(input_ids, attention_mask, torch.full_like(labels, -100))
    loss.backward()
    assert loss.item() == 0.0


@pytest.mark.parametrize("ln_mode", ["pre-ln", "post-ln"])
def test_loss_decreases_on_a_repeated_batch(ln_mode):
    model = tiny_model(ln_mode, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    input_ids, attention_mask, labels = batch()
    losses = []
    for _ in range(25):
        loss = model(input_ids, attention_mask, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


def test_pre_ln_has_a_final_layer_norm_and_post_ln_has_none():
    assert isinstance(tiny_model("pre-ln").encoder.final_norm, torch.nn.LayerNorm)
    assert isinstance(tiny_model("post-ln").encoder.final_norm, torch.nn.Identity)


def test_build_model_config_keeps_the_preset_where_overrides_are_zero():
    config = build_model_config("bert-small", 30522, hidden_size=0, num_hidden_layers=6, intermediate_size=None,
                                hidden_act="relu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=None)
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (512, 6, 2048)
    assert config.hidden_act == "relu" and config.vocab_size == 30528
    assert (config.hidden_dropout_prob, config.attention_probs_dropout_prob) == (0.0, 0.1)  # 0.0 is a value
    assert set(PRESETS) == {"bert-tiny", "bert-mini", "bert-small", "bert-medium", "bert-base", "bert-large"}
    with pytest.raises(ValueError, match="unknown model preset"):
        build_model_config("bert-huge", 100)
    with pytest.raises(ValueError, match="not divisible"):
        build_model_config("bert-tiny", 100, num_attention_heads=3)


def test_model_config_from_the_yacs_model_section():
    cfg = get_default_config()
    cfg.MODEL.PRESET = "bert-mini"
    cfg.MODEL.NUM_ATTENTION_HEADS = 8
    cfg.MODEL.ENCODER_LN_MODE = "post-ln"
    cfg.MODEL.HIDDEN_DROPOUT_PROB = 0.0
    config = model_config_from_cfg(cfg, 28996)
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (256, 8, 4)
    assert config.encoder_ln_mode == "post-ln" and config.hidden_dropout_prob == 0.0
    assert (config.vocab_size, config.tokenizer_vocab_size) == (29056, 28996)


def test_flops_per_sample_counts_the_sparse_last_layer_and_head():
    config = build_model_config("bert-tiny", VOCAB)
    h, i, seq, preds = 128, 512, 16, 3
    per_token = 4 * h * h + 2 * h * i + 2 * seq * h
    last_layer = seq * 2 * h * h + preds * (2 * h * h + 2 * h * i + 2 * seq * h)  # K/V everywhere, the rest sparse
    expected = 6 * (seq * per_token + last_layer + preds * (h * h + h * 1024))
    assert pretraining_flops_per_sample(config, seq, preds) == expected


def test_maybe_compile_disabled_returns_the_model_itself():
    model = tiny_model()
    assert maybe_compile(model, False) is model


def test_cpu_dropout_drops_a_fraction_p_and_rescales_the_rest():
    from pretraining.modeling import cpu_dropout

    torch.manual_seed(0)
    x = torch.ones(200_000, requires_grad=True)
    y = cpu_dropout(x, 0.1)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(0.1, abs=0.003)
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.9))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # gradient = mask / (1 - p)
    odd = torch.ones(3, 5, 7, dtype=torch.bfloat16)  # sizes that are not a multiple of four
    assert cpu_dropout(odd, 0.5).shape == odd.shape


def test_cpu_attention_path_equals_sdpa_when_nothing_is_dropped():
    from pretraining.modeling import attention_with_cpu_dropout, sdpa_padding_mask

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 6, 8) for _ in range(3))
    attention_mask = torch.ones(2, 6, dtype=torch.long)
    attention_mask[0, 4:] = 0
    mask = sdpa_padding_mask(attention_mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(attention_with_cpu_dropout(q, k, v, mask, 1e-9), expected)  # p rounds to 0
