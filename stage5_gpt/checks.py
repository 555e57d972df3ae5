"""The checks of stage 5's build-it-yourself parts (yours.py), run by `python -m shared.check stage5`.

Your function and the reference get the same random inputs (fixed seeds); values, masked positions,
shapes and gradients are compared, and the attention also against F.scaled_dot_product_attention.
`train --yours` (and `generate --yours`) builds the GPT with your parts (model.Parts), on the settings below.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from shared import sampling
from shared.check import Part, Wrong, leaked, same, same_grads, seeded
from stage5_gpt import model as reference
from stage5_gpt.model import GPT, GPTConfig, Parts, causal_mask


def check_causal_self_attention(yours) -> None:
    seeded(0)
    q, k, v = (torch.randn(2, 3, 6, 4, requires_grad=True) for _ in range(3))
    for T in (6, 2, 1):  # training (T = S), then the last positions as with a KV cache
        qq = q[:, :, -T:]
        result = yours(qq, k, v)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise Wrong("return a pair: (output (B, nh, T, hd), weights (B, nh, T, S))")
        out, weights = result
        if isinstance(weights, torch.Tensor) and weights.dim() == 4 and torch.isnan(weights).all(-1).any():
            row = int(torch.isnan(weights).all(-1).nonzero()[0, -1])
            raise Wrong(f"with {T} queries over 6 keys, the weights of query {row} are all NaN: it sees no key at all "
                        "(a softmax over only -inf). Does your mask hide the diagonal? A query sees its own key.")
        expected_out, expected_w = reference.causal_self_attention(qq, k, v)
        leaked(f"with {T} queries over 6 keys", weights, ~causal_mask(T, 6, q.device).expand(2, 3, T, 6))
        same(f"weights with {T} queries over 6 keys", expected_w, weights)
        same(f"output with {T} queries over 6 keys", expected_out, out)
        if T == 6:
            same("output, against F.scaled_dot_product_attention(is_causal=True)",
                 F.scaled_dot_product_attention(q, k, v, is_causal=True), out)
    grad = torch.randn(2, 3, 6, 4)
    expected = torch.autograd.grad(reference.causal_self_attention(q, k, v)[0], [q, k, v], grad)
    got = torch.autograd.grad(yours(q, k, v)[0], [q, k, v], grad, allow_unused=True)
    same_grads("backward", expected, got, ["q", "k", "v"])


def check_kv_cache_update(yours) -> None:
    seeded(0)
    k1, v1 = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    first = yours(None, k1, v1)
    same("with nothing cached yet: the keys", k1, first[0])
    same("with nothing cached yet: the values", v1, first[1])
    for new in (4, 1):  # a chunk of 4 new tokens (as when reading a prompt), then one (as when generating)
        k2, v2 = torch.randn(2, 3, new, 5), torch.randn(2, 3, new, 5)
        expected = reference.kv_cache_update((k1, v1), k2, v2)
        got = yours((k1, v1), k2, v2)
        same(f"keys after {new} more tokens", expected[0], got[0])
        same(f"values after {new} more tokens", expected[1], got[1])
    # The whole model: generating with the cache must give the logits of running on the full text.
    seeded(1)
    gpt = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=8, attention="manual"),
              Parts(kv_cache_update=yours)).eval()
    idx = torch.randint(0, 20, (2, 7))
    full, _ = gpt(idx)
    cache = reference.KVCache(2)
    gpt(idx[:, :6], cache=cache)
    last, _ = gpt(idx[:, 6:], cache=cache)
    same("the GPT's logits for token 7 read with your cache (vs reading all 7 tokens)", full[:, 6], last[:, 0])


def check_top_k_filter(yours) -> None:
    seeded(0)
    logits = torch.randn(3, 10)
    before = logits.clone()
    for k in (1, 3, 10):
        got = yours(logits, k)
        same(f"k = {k}", sampling.top_k_filter(logits, k), got)
    same("the input logits (they must not change)", before, logits)


def check_top_p_filter(yours) -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.1, 0.06, 0.04], [0.04, 0.06, 0.1, 0.3, 0.5]]))
    before = logits.clone()
    for p in (0.5, 0.8, 0.85, 0.95, 1.0):
        got = yours(logits, p)
        expected = sampling.top_p_filter(logits, p)
        kept_expected = torch.isfinite(expected)
        kept = torch.isfinite(got) if isinstance(got, torch.Tensor) else None
        if kept is not None and kept.shape == kept_expected.shape and not torch.equal(kept, kept_expected):
            row = int((kept != kept_expected).any(-1).nonzero()[0])
            probs = [round(x, 2) for x in logits[row].exp().tolist()]
            raise Wrong(f"p = {p}, probabilities {probs}: the nucleus is tokens "
                        f"{kept_expected[row].nonzero().flatten().tolist()}, you kept "
                        f"{kept[row].nonzero().flatten().tolist()}")
        same(f"p = {p}", expected, got)
    same("the input logits (they must not change)", before, logits)


def check_init_gpt2(yours) -> None:
    seeded(0)
    gpt = GPT(GPTConfig(vocab_size=500, block_size=64, n_layer=8, n_head=4, n_embd=256, bias=True))
    def is_norm(name: str) -> bool:
        return ".ln_" in name or name.startswith("ln_f")

    with torch.no_grad():  # scramble what init must set, so one it leaves alone is noticed; norms stay 1 and 0
        for name, p in gpt.named_parameters():
            if not is_norm(name):
                p.uniform_(-1, 1)
    yours(gpt)
    expected = {"c_proj.weight": 0.02 / math.sqrt(2 * 8)}
    for name, p in gpt.named_parameters():
        kind = next((k for k in expected if name.endswith(k)), None)
        if is_norm(name):
            start = 1.0 if name.endswith("weight") else 0.0
            if not torch.all(p.detach() == start):
                raise Wrong(f"{name}: changed by your init (values {p.min().item():.3f} to {p.max().item():.3f}); "
                            f"leave the LayerNorms at gain 1 and bias 0, as nn.LayerNorm starts them")
        elif p.dim() >= 2:
            std = expected.get(kind, 0.02)
            got = p.detach().float().std().item()
            if abs(got - std) > 0.1 * std or abs(p.detach().float().mean().item()) > 0.2 * std:
                raise Wrong(f"{name}: standard deviation {got:.4f}, expected {std:.4f}")
        elif name.endswith("bias") and p.detach().abs().max() > 0:
            raise Wrong(f"{name}: expected zeros, largest value {p.detach().abs().max().item():.3f}")


PARTS = [
    Part("causal_self_attention", check_causal_self_attention,
         "with T queries over S keys, query i may see keys j <= S - T + i: torch.ones(T, S).tril(diagonal=S - T)"),
    Part("kv_cache_update", check_kv_cache_update,
         "concatenate along the time axis, dim=2 of (B, nh, T, hd): old keys first, then the new ones"),
    Part("top_k_filter", check_top_k_filter,
         "torch.topk(logits, k).values[..., -1:] is each row's k-th largest; mask what is smaller"),
    Part("top_p_filter", check_top_p_filter,
         "sort descending, cumulative probability minus the token's own: drop where that is already >= p"),
    Part("init_gpt2", check_init_gpt2,
         "nn.init.normal_(w, 0.0, 0.02) for Linear/Embedding weights, zeros for biases, then c_proj again "
         "with std 0.02 / sqrt(2 * n_layer)"),
]

# The settings --yours trains with: the written-out attention, which calls your causal_self_attention,
# instead of F.scaled_dot_product_attention.
YOURS_SETTINGS = {"attention": "manual"}
