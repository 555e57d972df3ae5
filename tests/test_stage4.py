"""Stage 4: the written-out Transformer equals PyTorch's modules, its masks hold, incremental decoding
equals full decoding, a tiny model memorises 50 pairs, and the commands work."""

import pytest
import torch
from helpers import check_memorises_fifty_pairs, check_resume_equals_uninterrupted, first_and_last_train_loss
from torch import nn

from stage4_transformer import evaluate as stage4_evaluate
from stage4_transformer import train as stage4_train
from stage4_transformer import translate as stage4_translate
from stage4_transformer.config import TransformerTrainConfig
from stage4_transformer.model import MultiHeadAttention, Transformer, TransformerConfig

D, H = 16, 4


def copy_attention(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    """PyTorch stacks the q, k, v projections into one in_proj matrix: split it into ours."""
    with torch.no_grad():
        for i, proj in enumerate([ours.q_proj, ours.k_proj, ours.v_proj]):
            proj.weight.copy_(theirs.in_proj_weight[i * D:(i + 1) * D])
            proj.bias.copy_(theirs.in_proj_bias[i * D:(i + 1) * D])
        ours.out_proj.load_state_dict(theirs.out_proj.state_dict())


def copy_layer(ours: nn.Module, theirs: nn.Module) -> None:
    copy_attention(ours.self_attn, theirs.self_attn)
    if hasattr(theirs, "multihead_attn"):
        copy_attention(ours.multihead_attn, theirs.multihead_attn)
    for name in ("linear1", "linear2", "norm1", "norm2", "norm3"):
        if hasattr(theirs, name):
            getattr(ours, name).load_state_dict(getattr(theirs, name).state_dict())


def small(**overrides) -> Transformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(**{"src_vocab": 30, "tgt_vocab": 30, "d_model": D, "n_heads": H, "n_enc_layers": 1,
                               "n_dec_layers": 1, "d_ff": 32, "dropout": 0.0, **overrides})
    return Transformer(cfg).eval()


def test_multi_head_attention_equals_torch():
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(D, H, batch_first=True).eval()
    ours = MultiHeadAttention(D, H, dropout=0.0).eval()
    copy_attention(ours, theirs)
    q, kv = torch.randn(2, 5, D), torch.randn(2, 7, D)
    padding = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])  # True = padding (PyTorch's convention)
    expected, _ = theirs(q, kv, kv, key_padding_mask=padding)
    got = ours(q, kv, ~padding[:, None, None, :])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("norm_first", [True, False])
def test_one_layer_encoder_decoder_equals_torch_transformer(norm_first):
    torch.manual_seed(0)
    model = small(norm_first=norm_first)
    src, tgt = torch.randn(2, 7, D), torch.randn(2, 5, D)
    src_pad = torch.tensor([[False] * 7, [False] * 5 + [True] * 2])
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    if norm_first:  # nn.Transformer: pre-LN layers plus final norms, as ours
        theirs = nn.Transformer(D, H, 1, 1, 32, dropout=0.0, batch_first=True, norm_first=True).eval()
        copy_layer(model.encoder_layers[0], theirs.encoder.layers[0])
        copy_layer(model.decoder_layers[0], theirs.decoder.layers[0])
        model.encoder_norm.load_state_dict(theirs.encoder.norm.state_dict())
        model.decoder_norm.load_state_dict(theirs.decoder.norm.state_dict())
        expected = theirs(src, tgt, tgt_mask=~causal, src_key_padding_mask=src_pad,
                          memory_key_padding_mask=src_pad)
    else:  # post-LN (the paper's): nn.Transformer would add final norms the paper does not have
        enc = nn.TransformerEncoderLayer(D, H, 32, dropout=0.0, batch_first=True).eval()
        dec = nn.TransformerDecoderLayer(D, H, 32, dropout=0.0, batch_first=True).eval()
        copy_layer(model.encoder_layers[0], enc)
        copy_layer(model.decoder_layers[0], dec)
        memory = enc(src, src_key_padding_mask=src_pad)
        expected = dec(tgt, memory, tgt_mask=~causal, memory_key_padding_mask=src_pad)
    mask = ~src_pad[:, None, None, :]
    memory = model.encoder_norm(model.encoder_layers[0](src, mask))
    got = model.decoder_norm(model.decoder_layers[0](tgt, memory, causal, mask))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_sdpa_equals_the_written_out_attention():
    manual = small(attention="manual", n_enc_layers=2, n_dec_layers=2)
    fast = small(attention="sdpa", n_enc_layers=2, n_dec_layers=2)
    fast.load_state_dict(manual.state_dict())
    src, tgt = torch.randint(4, 30, (3, 8)), torch.randint(4, 30, (3, 6))
    src[0, 5:] = 0
    torch.testing.assert_close(fast(src, None, tgt), manual(src, None, tgt), rtol=0, atol=1e-5)


def test_causal_mask_hides_later_target_tokens():
    model = small(n_dec_layers=2)
    src, tgt = torch.randint(4, 30, (1, 8)), torch.randint(4, 30, (1, 7))
    changed = tgt.clone()
    changed[0, 4:] = torch.randint(4, 30, (3,))
    a, b = model(src, None, tgt), model(src, None, changed)  # logits for positions 0..5
    torch.testing.assert_close(a[:, :4], b[:, :4], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, 4:], b[:, 4:])


@pytest.mark.parametrize("attention", ["manual", "sdpa"])
def test_incremental_decoding_equals_full_decoding(attention):
    model = small(attention=attention, n_enc_layers=2, n_dec_layers=2)
    src, tgt = torch.randint(4, 30, (2, 9)), torch.randint(4, 30, (2, 6))
    src[1, 6:] = 0
    full = torch.log_softmax(model(src, None, tgt), dim=-1)  # (B, 5, V)
    state = model.decode_start(src, None)
    for t in range(5):
        step, state = model.decode_step(tgt[:, t], state)
        torch.testing.assert_close(step, full[:, t], rtol=0, atol=1e-5)


def test_tiny_model_memorises_fifty_pairs():
    cfg = TransformerTrainConfig(preset="tiny", max_len=20, max_decode_len=25)
    check_memorises_fifty_pairs(lambda src, tgt: Transformer(TransformerConfig(
        src, tgt, d_model=64, n_heads=4, n_enc_layers=2, n_dec_layers=2, d_ff=128, dropout=0.0)), cfg, lr=1e-3)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "stage4_transformer" / "tiny"
    record = stage4_train.main(["--preset", "tiny", "--out_dir", str(out)])
    return out, record


def test_tiny_preset_learns_to_translate_a_little(tiny_run):
    out, record = tiny_run
    first, last = first_and_last_train_loss(out)
    assert last < first - 1.0
    assert record["test_bleu"] > 0.05 and record["test_bleu_beam"] > 0.05 and record["test_chrf"] > 5


def test_train_evaluate_translate(tiny_run, tmp_path):
    out, record = tiny_run
    assert record["stage"] == "stage4_transformer" and "test_bleu_beam" in record
    results = stage4_evaluate.main(["--checkpoint", str(out), "--beam_size", "2", "--device", "cpu"])
    assert "bleu_beam" in results
    png = tmp_path / "attn.png"
    stage4_translate.main(["a man is riding a bike .", "--checkpoint", str(out), "--show_attention", str(png)])
    assert png.stat().st_size > 1000


def test_resume_equals_uninterrupted(tmp_path):
    check_resume_equals_uninterrupted(stage4_train.main, tmp_path, "--max_train_pairs", "200", "--eval_pairs", "20",
                                      "--beam_size", "1")


# --------------------------------------------------------------------------- the encoder, classifying


@pytest.mark.parametrize("pool", ["mean", "max", "first"])
def test_encoder_classifier_ignores_padding(pool):
    from stage4_transformer.model import EncoderClassifier, TransformerConfig

    torch.manual_seed(0)
    cfg = TransformerConfig(src_vocab=50, tgt_vocab=1, d_model=16, n_heads=2, n_enc_layers=2, n_dec_layers=0, d_ff=32,
                            dropout=0.0)
    model = EncoderClassifier(cfg, 3, pool).eval()
    text = torch.tensor([[2, 9, 14, 3]])
    padded = torch.tensor([[2, 9, 14, 3, 0, 0], [2, 8, 0, 0, 0, 0]])  # right-padded with <pad> = 0
    assert torch.allclose(model(text)[0], model(padded)[0], atol=1e-5)


def test_encoder_classifier_trains_above_chance_on_trec(tmp_path):
    from stage4_transformer import classify_train

    record = classify_train.main(["--preset", "tiny", "--dataset", "trec", "--max_steps", "120",
                                  "--out_dir", str(tmp_path / "run")])
    assert record["task"] == "classification" and record["test_accuracy"] > 0.35  # 6 classes; the largest is 28%
    assert record["model"].startswith("Transformer encoder 1L/2H/32d")
