"""The checks of stage 4's build-it-yourself parts (yours.py), run by `python -m shared.check stage4`.

Each check feeds your function and the reference the same random inputs (fixed seeds) and compares
values, masked positions and gradients; where PyTorch has the same thing (F.scaled_dot_product_attention,
nn.MultiheadAttention, nn.TransformerEncoderLayer) it is compared too. The modules are built with your
part in their `Parts`, as `train --yours` builds the model; YOURS_SETTINGS are the settings that run it.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from shared.check import Part, Wrong, leaked, same, same_grads, same_or_named, seeded
from stage4_transformer import model as reference
from stage4_transformer.model import EncoderLayer, MultiHeadAttention, Parts, TransformerConfig

# The written-out attention (your scaled_dot_product_attention) instead of F.scaled_dot_product_attention,
# and pre-LN (your encoder_layer): the settings `train --yours` trains with.
YOURS_SETTINGS = {"attention": "manual", "norm_first": True}

SMALL = TransformerConfig(d_model=12, n_heads=3, d_ff=20, dropout=0.0, attention="manual")
# Training: the cpu and gpu presets train with dropout 0.1, so a part is run in train mode too, with the
# same random draws as the reference (the same seed before each): a dropout left out or added changes them.
DROPPY = replace(SMALL, dropout=0.3)


def _qkv(B=2, h=3, T=5, S=6, dh=4):
    seeded(0)
    return [torch.randn(B, h, n, dh, requires_grad=True) for n in (T, S, S)]


def check_scaled_dot_product_attention(yours) -> None:
    q, k, v = _qkv()
    padding = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])[:, None, None, :]  # (B, 1, 1, S)
    causal = torch.ones(6, 6, dtype=torch.bool).tril()  # (T, S) for T = S
    for name, (qq, kk, vv), mask in [("no mask", (q, k, v), None), ("a padding mask", (q, k, v), padding),
                                     ("a causal mask", (k, k, v), causal)]:
        expected_out, expected_w = reference.scaled_dot_product_attention(qq, kk, vv, mask)
        result = yours(qq, kk, vv, mask)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise Wrong("return a pair: (out (B, h, T, dh), weights (B, h, T, S))")
        out, weights = result
        if mask is not None:
            leaked(f"with {name}", weights, ~mask.expand_as(expected_w))
        same(f"weights with {name}", expected_w, weights)
        same(f"output with {name}", expected_out, out)
        torch_out = F.scaled_dot_product_attention(qq, kk, vv, attn_mask=mask)
        same(f"output with {name}, against F.scaled_dot_product_attention", torch_out, out)
    grad = torch.randn_like(q)
    expected = torch.autograd.grad(reference.scaled_dot_product_attention(q, k, v, padding)[0], [q, k, v], grad)
    got = torch.autograd.grad(yours(q, k, v, padding)[0], [q, k, v], grad, allow_unused=True)
    same_grads("backward", expected, got, ["q", "k", "v"])


def check_sinusoidal_positions(yours) -> None:
    for n, d in [(7, 8), (50, 16)]:
        table = reference.sinusoidal_positions(n, d)
        swapped = torch.stack([table[:, 1::2], table[:, 0::2]], dim=-1).flatten(1)  # cos in the even columns
        same_or_named(f"the table for n={n}, d={d}", table, yours(n, d),
                      [("the even columns hold cos and the odd ones sin: it is the other way round", swapped)])


def _written_out_attend(q, k, v, mask):
    return reference.scaled_dot_product_attention(q, k, v, mask)[0]  # (B, h, T, dh)


def _copy_attention(attn: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    """attn's weights into nn.MultiheadAttention, in PyTorch's layout: q, k, v stacked in in_proj."""
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
        theirs.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
        theirs.out_proj.load_state_dict(attn.out_proj.state_dict())


def check_multi_head_attention(yours) -> None:
    seeded(0)
    q, k, v = torch.randn(2, 5, 12, requires_grad=True), torch.randn(2, 7, 12), torch.randn(2, 7, 12)
    real = torch.tensor([[True] * 7, [True] * 5 + [False] * 2])  # (B, S)
    mask = real[:, None, None, :]  # (B, 1, 1, S)
    out = yours(q, k, v, mask, 3, _written_out_attend)
    same("output", reference.multi_head_attention(q, k, v, mask, 3, _written_out_attend), out)
    changed = v.clone()
    changed[1, 5:] = 100.0  # the padded positions of sentence 1: they must not matter
    same("output when only padded positions change (padding must be masked)", out[1],
         yours(q, k, changed, mask, 3, _written_out_attend)[1])
    # In the module, between its projections, against the reference module and nn.MultiheadAttention.
    attn = MultiHeadAttention(SMALL, Parts(multi_head_attention=yours)).eval()
    expected_attn = MultiHeadAttention(SMALL).eval()
    expected_attn.load_state_dict(attn.state_dict())
    torch_attn = nn.MultiheadAttention(12, 3, batch_first=True).eval()
    _copy_attention(attn, torch_attn)
    query, memory = torch.randn(2, 5, 12, requires_grad=True), torch.randn(2, 7, 12)
    got = attn(query, memory, mask)
    same("the module's output, against nn.MultiheadAttention", torch_attn(query, memory, memory,
                                                                          key_padding_mask=~real)[0], got)
    grad = torch.randn_like(got)
    expected = torch.autograd.grad(expected_attn(query, memory, mask), [query] + list(expected_attn.parameters()),
                                   grad)
    got_grads = torch.autograd.grad(got, [query] + list(attn.parameters()), grad, allow_unused=True)
    same_grads("backward", expected, got_grads, ["query"] + [n for n, _ in attn.named_parameters()])
    _check_attends_with_attend(yours, q, k, v, mask)
    attn, expected_attn = MultiHeadAttention(DROPPY, Parts(multi_head_attention=yours)), MultiHeadAttention(DROPPY)
    expected_attn.load_state_dict(attn.state_dict())
    seeded(5)
    got = attn(query, memory, mask)
    seeded(5)
    same("the module's output in train mode, attention dropout 0.3 (the same random draws)",
         expected_attn(query, memory, mask), got)


def _check_attends_with_attend(yours, q, k, v, mask) -> None:
    """The heads must go through the `attend` given: it is where attention dropout happens while training."""
    calls = []

    def attend(qh, kh, vh, m):
        calls.append(tuple(qh.shape))
        return _written_out_attend(qh, kh, vh, m)

    yours(q, k, v, mask, 3, attend)
    if calls != [(2, 3, 5, 4)]:
        seen = f"called it {len(calls)} times" + (f", first with q of shape {calls[0]}" if calls else "")
        raise Wrong(f"call attend(q_h, k_h, v_h, mask) once, with all heads at once (q_h (B, h, T, dh) = "
                    f"(2, 3, 5, 4) here); yours {seen}. attend is your scaled_dot_product_attention plus "
                    "attention dropout while training (or F.scaled_dot_product_attention): calling "
                    "scaled_dot_product_attention yourself skips that dropout.")


def check_encoder_layer(yours) -> None:
    seeded(0)
    layer = EncoderLayer(SMALL, Parts(encoder_layer=yours)).eval()  # pre-LN: your function is its forward
    torch_layer = nn.TransformerEncoderLayer(12, 3, 20, dropout=0.0, batch_first=True, norm_first=True).eval()
    _copy_attention(layer.self_attn, torch_layer.self_attn)
    with torch.no_grad():
        for name in ("linear1", "linear2", "norm1", "norm2"):
            getattr(torch_layer, name).load_state_dict(getattr(layer, name).state_dict())
    x = torch.randn(2, 6, 12, requires_grad=True)
    real = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    mask = real[:, None, None, :]
    out = layer(x, mask)
    expected = reference.encoder_layer(layer, x, mask)
    same("output", expected, out)
    same("output, against nn.TransformerEncoderLayer(norm_first=True)", torch_layer(x, src_key_padding_mask=~real),
         out, atol=1e-4)
    grad = torch.randn_like(out)
    params = [x] + list(layer.parameters())
    expected_grads = torch.autograd.grad(expected, params, grad)
    got = torch.autograd.grad(out, params, grad, allow_unused=True)
    same_grads("backward", expected_grads, got, ["x"] + [n for n, _ in layer.named_parameters()])
    layer = EncoderLayer(DROPPY, Parts(encoder_layer=yours))  # train mode: its dropouts are on
    seeded(7)
    out = layer(x, mask)
    seeded(7)
    same("output in train mode, dropout 0.3 (the same random draws): is each sub-layer's output passed "
         "through layer.drop before it is added to x?", reference.encoder_layer(layer, x, mask), out)


PARTS = [
    Part("scaled_dot_product_attention", check_scaled_dot_product_attention,
         "scores = q @ k.transpose(-2, -1) / sqrt(dh); masked_fill(~mask, -inf); softmax over the last axis "
         "(the keys)"),
    Part("sinusoidal_positions", check_sinusoidal_positions,
         "even columns sin, odd columns cos, of position * 10000^(-2i/d), with i the pair index"),
    Part("multi_head_attention", check_multi_head_attention,
         "view (B, L, d) as (B, L, h, dh) and transpose to (B, h, L, dh); after attend transpose back and "
         "reshape to (B, T, d)", uses=("scaled_dot_product_attention",)),
    Part("encoder_layer", check_encoder_layer,
         "pre-LN: normalise the input of each sub-layer, add the sub-layer's output to the unnormalised x"),
]
