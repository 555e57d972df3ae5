"""The checks of stage 4's build-it-yourself parts (yours.py), run by `python -m shared.check stage4`.

Each check feeds your function and the reference the same random inputs (fixed seeds) and compares
values, masked positions and gradients; where PyTorch has the same thing (F.scaled_dot_product_attention,
nn.MultiheadAttention, nn.TransformerEncoderLayer) it is compared too. `install` swaps your parts
into model.py for `train --yours`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from shared.check import Part, Wrong, leaked, same, same_grads, seeded
from stage4_transformer import model as reference
from stage4_transformer.model import EncoderLayer, MultiHeadAttention, TransformerConfig


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
        same(f"the table for n={n}, d={d}", reference.sinusoidal_positions(n, d), yours(n, d))


def _attention_module(d=12, heads=3, seed=0):
    seeded(seed)
    attn = MultiHeadAttention(d, heads, dropout=0.0).eval()
    torch_attn = nn.MultiheadAttention(d, heads, batch_first=True).eval()
    with torch.no_grad():  # the same weights in PyTorch's layout: q, k, v stacked in in_proj
        torch_attn.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
        torch_attn.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
        torch_attn.out_proj.load_state_dict(attn.out_proj.state_dict())
    return attn, torch_attn


def check_multi_head_attention(yours) -> None:
    attn, torch_attn = _attention_module()
    query, memory = torch.randn(2, 5, 12, requires_grad=True), torch.randn(2, 7, 12)
    real = torch.tensor([[True] * 7, [True] * 5 + [False] * 2])  # (B, S)
    mask = real[:, None, None, :]  # (B, 1, 1, S)
    out = yours(query, memory, mask, attn)
    same("output", reference.multi_head_attention(query, memory, mask, attn), out)
    theirs, _ = torch_attn(query, memory, memory, key_padding_mask=~real)
    same("output, against nn.MultiheadAttention", theirs, out)
    changed = memory.clone()
    changed[1, 5:] = 100.0  # the padded positions of sentence 1: they must not matter
    same("output when only padded positions change (padding must be masked)", out[1],
         yours(query, changed, mask, attn)[1])
    grad = torch.randn_like(out)
    expected = torch.autograd.grad(reference.multi_head_attention(query, memory, mask, attn), [query] +
                                   list(attn.parameters()), grad)
    got = torch.autograd.grad(out, [query] + list(attn.parameters()), grad, allow_unused=True)
    same_grads("backward", expected, got, ["query"] + [n for n, _ in attn.named_parameters()])


def check_encoder_layer(yours) -> None:
    seeded(0)
    cfg = TransformerConfig(d_model=12, n_heads=3, d_ff=20, dropout=0.0, attention="manual")
    layer = EncoderLayer(cfg).eval()
    torch_layer = nn.TransformerEncoderLayer(12, 3, 20, dropout=0.0, batch_first=True, norm_first=True).eval()
    with torch.no_grad():
        torch_layer.self_attn.in_proj_weight.copy_(torch.cat([layer.self_attn.q_proj.weight,
                                                              layer.self_attn.k_proj.weight,
                                                              layer.self_attn.v_proj.weight]))
        torch_layer.self_attn.in_proj_bias.copy_(torch.cat([layer.self_attn.q_proj.bias, layer.self_attn.k_proj.bias,
                                                            layer.self_attn.v_proj.bias]))
        torch_layer.self_attn.out_proj.load_state_dict(layer.self_attn.out_proj.state_dict())
        for name in ("linear1", "linear2", "norm1", "norm2"):
            getattr(torch_layer, name).load_state_dict(getattr(layer, name).state_dict())
    x = torch.randn(2, 6, 12, requires_grad=True)
    real = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    mask = real[:, None, None, :]
    out = yours(x, mask, layer)
    same("output", reference.encoder_layer(x, mask, layer), out)
    same("output, against nn.TransformerEncoderLayer(norm_first=True)", torch_layer(x, src_key_padding_mask=~real),
         out, atol=1e-4)
    grad = torch.randn_like(out)
    expected = torch.autograd.grad(reference.encoder_layer(x, mask, layer), [x] + list(layer.parameters()), grad)
    got = torch.autograd.grad(out, [x] + list(layer.parameters()), grad, allow_unused=True)
    same_grads("backward", expected, got, ["x"] + [n for n, _ in layer.named_parameters()])


PARTS = [
    Part("scaled_dot_product_attention", check_scaled_dot_product_attention,
         "scores = q @ k.transpose(-2, -1) / sqrt(dh); masked_fill(~mask, -inf); softmax over the last axis "
         "(the keys)"),
    Part("sinusoidal_positions", check_sinusoidal_positions,
         "even columns sin, odd columns cos, of position * 10000^(-2i/d), with i the pair index"),
    Part("multi_head_attention", check_multi_head_attention,
         "view (B, L, d) as (B, L, h, dh) and transpose to (B, h, L, dh); after attention transpose back and "
         "reshape to (B, T, d) before out_proj"),
    Part("encoder_layer", check_encoder_layer,
         "pre-LN: normalise the input of each sub-layer, add the sub-layer's output to the unnormalised x"),
]


def install(parts: dict) -> dict:
    """Put your parts where model.py calls them; returns the settings --yours trains with."""
    for name, fn in parts.items():
        setattr(reference, name, fn)
    # The written-out path (your attention) instead of F.scaled_dot_product_attention, and pre-LN
    # (your encoder layer): the settings that run your code.
    return {"attention": "manual", "norm_first": True}
