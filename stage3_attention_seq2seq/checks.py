"""The checks of stage 3's build-it-yourself parts (yours.py), run by `python -m shared.check stage3`.

Your attention and the reference get the same random states (fixed seeds); the context, the weights,
the padding (weight exactly 0, and changing a padded state changes nothing) and the gradients are
compared. Greedy decoding is checked on a small model, step by step and as a whole decode.
`train --yours` builds the model with your parts (model.Parts); its greedy decoding takes your step.
"""

from __future__ import annotations

import torch

from shared import beam
from shared.check import Part, Wrong, leaked, same, same_grads, seeded
from shared.tokenizers import BOS_ID, PAD_ID
from stage3_attention_seq2seq import model as reference
from stage3_attention_seq2seq.model import Seq2Seq, Seq2SeqConfig


def _inputs(D=6, A=5, E=8):
    seeded(0)
    s = torch.randn(3, D, requires_grad=True)
    values = torch.randn(3, 7, E, requires_grad=True)
    mask = torch.tensor([[True] * 7, [True] * 5 + [False] * 2, [True] * 2 + [False] * 5])  # (B, S)
    return s, values, mask


def _check_attention(yours, reference_fn, extra: dict) -> None:
    s, values, mask = _inputs()
    keys = torch.randn(3, 7, extra.pop("key_width"), requires_grad=True)
    params = list(extra.values())
    result = yours(s, keys, values, mask, *params)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise Wrong("return a pair: (context (B, E), weights (B, S))")
    context, weights = result
    ref_context, ref_weights = reference_fn(s, keys, values, mask, *params)
    leaked("the weights", weights, ~mask)
    same("the weights", ref_weights, weights)
    same("the context", ref_context, context)
    changed = values.detach().clone()
    changed[1, 5:] = 100.0  # sentence 1's padded positions: they must not matter
    same("the context when only padded positions change", context[1], yours(s, keys, changed, mask, *params)[0][1])
    inputs = [s, keys, values, *params]
    names = ["s", "keys", "values", *extra]
    grad = torch.randn_like(ref_context)
    same_grads("backward", torch.autograd.grad(ref_context, inputs, grad),
               torch.autograd.grad(context, inputs, grad, allow_unused=True), names)


def check_additive_attention(yours) -> None:
    seeded(1)
    W, v = torch.randn(5, 6, requires_grad=True), torch.randn(5, requires_grad=True)
    _check_attention(yours, reference.additive_attention, {"key_width": 5, "W": W, "v": v})


def check_multiplicative_attention(yours) -> None:
    _check_attention(yours, reference.multiplicative_attention, {"key_width": 6})


def check_greedy_step(yours) -> None:
    seeded(0)
    model = Seq2Seq(Seq2SeqConfig(src_vocab=12, tgt_vocab=9, embed_dim=8, enc_hidden=8, dec_hidden=8, attn_dim=8,
                                  dropout=0.0)).eval()
    src = torch.randint(4, 12, (4, 5))
    with torch.no_grad():
        state = model.decode_start(src, torch.full((4,), 5))
        prev = torch.full((4,), BOS_ID)
        finished = torch.tensor([False, True, False, False])
        result = yours(model, prev, state, finished)
        if not (isinstance(result, tuple) and len(result) == 3):
            raise Wrong("return a triple: (next tokens (B,), the new state, finished (B,))")
        expected = beam.greedy_step(model, prev, state, finished)
        if not isinstance(result[0], torch.Tensor) or result[0].tolist() != expected[0].tolist():
            raise Wrong(f"next tokens: expected {expected[0].tolist()} (a finished sentence gets <pad> = {PAD_ID}), "
                        f"got {result[0].tolist() if isinstance(result[0], torch.Tensor) else result[0]}")
        if not isinstance(result[2], torch.Tensor) or result[2].tolist() != expected[2].tolist():
            raise Wrong(f"finished: expected {expected[2].tolist()}, got {result[2]}")
        # A whole greedy decode, your step in the reference loop.
        reference_out = beam.greedy_decode(model, src, torch.full((4,), 5), 12)
        yours_out = beam.greedy_decode(model, src, torch.full((4,), 5), 12, step=yours)
        if yours_out != reference_out:
            raise Wrong(f"a whole greedy decode with your step: expected {reference_out}, got {yours_out}")


PARTS = [
    Part("additive_attention", check_additive_attention,
         "scores = tanh((s @ W.t())[:, None] + keys) @ v; masked_fill(~mask, -inf); softmax over the source axis; "
         "context = bmm(weights[:, None], values)"),
    Part("multiplicative_attention", check_multiplicative_attention,
         "scores = bmm(keys, s[:, :, None]).squeeze(-1), then the same mask, softmax and weighted sum"),
    Part("greedy_step", check_greedy_step,
         "next = log_probs.argmax(-1).masked_fill(finished, PAD_ID); finished = finished | (next == EOS_ID)"),
]

# --yours needs no other setting: stage 3's model has one path, the attention written out.
YOURS_SETTINGS: dict = {}
