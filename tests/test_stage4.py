"""Stage 4: the written-out Transformer equals PyTorch's modules, the fast attention equals the written-out
one, its masks hold, incremental decoding equals full decoding, each learner's part is the code that
runs, the classifier is the Transformer's encoder, a tiny model memorises 50 pairs, and the commands work."""

import dataclasses
from collections import Counter

import pytest
import torch
from helpers import check_memorises_fifty_pairs, check_resume_equals_uninterrupted, first_and_last_train_loss
from torch import nn

from stage4_transformer import checks as stage4_checks
from stage4_transformer import evaluate as stage4_evaluate
from stage4_transformer import train as stage4_train
from stage4_transformer import translate as stage4_translate
from stage4_transformer.config import TransformerTrainConfig
from stage4_transformer.model import (
    Encoder,
    EncoderClassifier,
    MultiHeadAttention,
    Parts,
    Transformer,
    TransformerConfig,
    scaled_dot_product_attention,
)

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


def config(**overrides) -> TransformerConfig:
    return TransformerConfig(**{"src_vocab": 30, "tgt_vocab": 30, "d_model": D, "n_heads": H, "n_enc_layers": 1,
                                "n_dec_layers": 1, "d_ff": 32, "dropout": 0.0, **overrides})


def small(parts: Parts | None = None, **overrides) -> Transformer:
    torch.manual_seed(0)
    return Transformer(config(**overrides), parts).eval()


def sentences(batch: int = 3, src_len: int = 8, tgt_len: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Random source and target ids (no <pad> = 0 among them), the first source padded after 5 tokens."""
    src, tgt = torch.randint(4, 30, (batch, src_len)), torch.randint(4, 30, (batch, tgt_len))
    src[0, 5:] = 0
    return src, tgt


def test_multi_head_attention_equals_torch():
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(D, H, batch_first=True).eval()
    ours = MultiHeadAttention(config(attention="manual")).eval()
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


# --------------------------------------------------------------------------- the fast path and the written-out one


@pytest.mark.parametrize("mask", ["padding", "causal"])
def test_fast_attention_equals_the_written_out_attention(mask):
    torch.manual_seed(0)
    written_out = MultiHeadAttention(config(attention="manual"))
    fast = MultiHeadAttention(config(attention="sdpa"))
    q, k, v = (torch.randn(2, H, 6, D // H, requires_grad=True) for _ in range(3))
    allowed = (torch.tensor([[True] * 6, [True] * 3 + [False] * 3])[:, None, None, :] if mask == "padding"
               else torch.ones(6, 6, dtype=torch.bool).tril())
    expected, got = written_out.attend(q, k, v, allowed), fast.attend(q, k, v, allowed)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    grad = torch.randn_like(got)
    for e, g in zip(torch.autograd.grad(expected, [q, k, v], grad), torch.autograd.grad(got, [q, k, v], grad)):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-5)


@pytest.mark.parametrize("norm_first", [True, False])
def test_the_fast_model_trains_like_the_written_out_one(norm_first):
    """The whole model, in training mode: the same logits and the same gradient of every parameter."""
    written_out = small(attention="manual", n_enc_layers=2, n_dec_layers=2, norm_first=norm_first).train()
    fast = small(attention="sdpa", n_enc_layers=2, n_dec_layers=2, norm_first=norm_first).train()
    fast.load_state_dict(written_out.state_dict())
    src, tgt = sentences()
    logits = [model(src, None, tgt) for model in (written_out, fast)]
    torch.testing.assert_close(logits[1], logits[0], rtol=0, atol=1e-5)
    for out in logits:
        out.square().mean().backward()
    for (name, p), q in zip(written_out.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


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
    beams = model.reorder_state(state, torch.tensor([1, 1, 0]))  # rows repeated and reordered, as beam search does
    step, _ = model.decode_step(tgt[[1, 1, 0], 5], beams)
    unordered, _ = model.decode_step(tgt[:, 5], state)
    torch.testing.assert_close(step[[2, 1, 0]], unordered[[0, 1, 1]], rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- attention maps


def test_attention_maps_are_the_weights_the_model_attends_with():
    """attention_weights returns, layer by layer, the weights the written-out forward pass computes, and
    the same with the fast attention; each row sums to 1 and padding gets 0."""
    used: list[torch.Tensor] = []

    def keeping(q, k, v, mask=None):
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        used.append(weights)
        return out, weights

    written_out = small(Parts(scaled_dot_product_attention=keeping), attention="manual", n_enc_layers=2,
                        n_dec_layers=2)
    src, tgt = sentences()
    written_out(src, None, tgt)
    in_the_pass = list(used)  # encoder layers, then each decoder layer's self- and cross-attention
    maps = written_out.attention_weights(src, tgt)
    expected = {"encoder": in_the_pass[:2], "decoder": in_the_pass[2::2], "cross": in_the_pass[3::2]}
    for name in expected:
        assert len(maps[name]) == 2
        for got, want in zip(maps[name], expected[name]):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    fast = small(attention="sdpa", n_enc_layers=2, n_dec_layers=2)
    fast.load_state_dict(written_out.state_dict())
    for name, group in fast.attention_weights(src, tgt).items():
        for got, want in zip(group, maps[name]):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    cross = maps["cross"][-1]  # (B, h, T-1, S)
    torch.testing.assert_close(cross.sum(-1), torch.ones(cross.shape[:-1]), rtol=0, atol=1e-6)
    assert cross[0, :, :, 5:].abs().max() == 0  # the padded source positions of sentence 0
    heatmap = written_out.attention_map(src[:1], None, tgt[:1])
    torch.testing.assert_close(heatmap, cross[0].mean(0), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- the learner's parts


class PartCalled(Exception):
    pass


def raising(*args, **kwargs):
    raise PartCalled


PART_NAMES = [f.name for f in dataclasses.fields(Parts)]


def test_the_parts_are_the_ones_the_checker_checks():
    assert PART_NAMES == [part.name for part in stage4_checks.PARTS]


@pytest.mark.parametrize("part", PART_NAMES)
def test_each_part_is_used_by_both_models_with_the_yours_settings(part):
    """A Parts whose one function raises makes the model raise, under the settings --yours trains with:
    the translation model and the classifier."""
    parts = Parts(**{part: raising})
    src, tgt = sentences()
    with pytest.raises(PartCalled):
        small(parts, **stage4_checks.YOURS_SETTINGS)(src, None, tgt)
    with pytest.raises(PartCalled):
        EncoderClassifier(config(**stage4_checks.YOURS_SETTINGS), 3, parts=parts)(src)


def test_each_decoding_step_runs_the_attention_parts():
    calls: Counter[str] = Counter()

    def counted(name):
        def part(*args, **kwargs):
            calls[name] += 1
            return getattr(Parts(), name)(*args, **kwargs)
        return part

    attention_parts = ["scaled_dot_product_attention", "multi_head_attention"]
    model = small(Parts(**{name: counted(name) for name in attention_parts}), n_dec_layers=2,
                  **stage4_checks.YOURS_SETTINGS)
    src, tgt = sentences()
    state = model.decode_start(src, None)
    calls.clear()
    model.decode_step(tgt[:, 0], state)
    assert calls == {name: 4 for name in attention_parts}  # self- and cross-attention in each of 2 layers


# --------------------------------------------------------------------------- checkpoints


# The state-dict names of a 1 + 1 layer model (and of the classifier) as of 9a6ef4e: old checkpoints load.
ATTENTION = [f"{proj}.{p}" for proj in ("q_proj", "k_proj", "v_proj", "out_proj") for p in ("weight", "bias")]
FFN_AND_NORMS = [f"{m}.{p}" for m in ("linear1", "linear2", "norm1", "norm2") for p in ("weight", "bias")]
ENCODER_LAYER = [f"encoder_layers.0.self_attn.{n}" for n in ATTENTION] + [f"encoder_layers.0.{n}"
                                                                          for n in FFN_AND_NORMS]
DECODER_LAYER = ([f"decoder_layers.0.self_attn.{n}" for n in ATTENTION]
                 + [f"decoder_layers.0.{n}" for n in FFN_AND_NORMS]
                 + [f"decoder_layers.0.multihead_attn.{n}" for n in ATTENTION]
                 + ["decoder_layers.0.norm3.weight", "decoder_layers.0.norm3.bias"])


def test_the_parameter_names_are_those_of_earlier_checkpoints():
    translation = ["src_embed.weight", "tgt_embed.weight", *ENCODER_LAYER, *DECODER_LAYER, "encoder_norm.weight",
                   "encoder_norm.bias", "decoder_norm.weight", "decoder_norm.bias", "generator.weight",
                   "generator.bias"]
    assert sorted(small().state_dict()) == sorted(translation)
    assert sorted(small(positions="learned").state_dict()) == sorted([*translation, "pos_embed.weight"])
    classifier = ["src_embed.weight", *ENCODER_LAYER, "encoder_norm.weight", "encoder_norm.bias", "head.weight",
                  "head.bias"]
    assert sorted(EncoderClassifier(config(n_dec_layers=0), 3).state_dict()) == sorted(classifier)


# --------------------------------------------------------------------------- training and the commands


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
    # The whole test split (1,000 pairs), greedy and beam, scored as the trained model scores: 0.46 and
    # 0.53 BLEU, 7.9 and 8.3 chrF; the same model untrained scores 0.0 and 0.002 BLEU, 5.8 and 6.2 chrF.
    beam = (out / "test.beam2.txt").read_text(encoding="utf-8").splitlines()
    assert results["split"] == "test" and len(beam) == 1000
    assert min(results["bleu"], results["bleu_beam"]) > 0.2 and min(results["chrf"], results["chrf_beam"]) > 7
    png = tmp_path / "attn.png"
    stage4_translate.main(["a man is riding a bike .", "--checkpoint", str(out), "--show_attention", str(png)])
    assert png.stat().st_size > 1000


def test_resume_equals_uninterrupted(tmp_path):
    check_resume_equals_uninterrupted(stage4_train.main, tmp_path, "--max_train_pairs", "200", "--eval_pairs", "20",
                                      "--beam_size", "1")


# --------------------------------------------------------------------------- the encoder, classifying


def test_the_classifier_is_the_transformers_encoder():
    """One Encoder class: both models are it, neither re-defines how it encodes, and with the same
    weights they encode a text to the same vectors."""
    cfg = config(n_enc_layers=2)
    translation, classifier = Transformer(cfg), EncoderClassifier(cfg, 3)
    assert isinstance(translation, Encoder) and isinstance(classifier, Encoder)
    assert type(translation).encode is Encoder.encode and type(classifier).encode is Encoder.encode
    assert type(translation).embed is Encoder.embed and type(classifier).embed is Encoder.embed
    shared = {k: v for k, v in translation.state_dict().items() if k in classifier.state_dict()}
    assert set(shared) == set(classifier.state_dict()) - {"head.weight", "head.bias"}
    classifier.load_state_dict({**classifier.state_dict(), **shared})
    src, _ = sentences()
    for a, b in zip(translation.eval().encode(src), classifier.eval().encode(src)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("pool", ["mean", "max", "first"])
def test_encoder_classifier_ignores_padding(pool):
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
