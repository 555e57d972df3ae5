"""Build it yourself: the Transformer's parts. Write each function below, then

    python -m shared.check stage4            # one line per part: passed / not implemented yet / wrong
    python -m stage4_transformer.train --yours --preset cpu   # the real model, trained with your parts

The reference is in model.py; try without it first. Theory: docs/stage4_transformer.md (sections
named below). Shapes: B batch, h heads, T query positions, S key positions, d model width, dh = d / h.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401  (you will want F.softmax)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention(Q, K, V) = softmax(Q Kᵀ / sqrt(dh)) V        (docs: "1. Scaled dot-product attention", "3. The masks")

    q (B, h, T, dh), k (B, h, S, dh), v (B, h, S, dh)
    mask: bool, broadcastable to (B, h, T, S), True where query t may look at key s (False: padding,
          or a later position in the decoder); a masked score becomes -inf before the softmax.
    Returns out (B, h, T, dh) and the weights (B, h, T, S), each row summing to 1 over the keys.
    """
    raise NotImplementedError


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """The position table (n, d) of "Attention Is All You Need"      (docs: "4. Positions")

    PE[p, 2i]   = sin(p / 10000^(2i/d))
    PE[p, 2i+1] = cos(p / 10000^(2i/d))        for positions p = 0 .. n-1 and i = 0 .. d/2 - 1
    """
    raise NotImplementedError


def multi_head_attention(query: torch.Tensor, key_value: torch.Tensor, mask: torch.Tensor | None,
                         attn) -> torch.Tensor:
    """Multi-head attention with the parameters of `attn`, a model.MultiHeadAttention (docs: "2. Multi-head attention")

    query (B, T, d), key_value (B, S, d), mask as above (B, 1, T or 1, S)  ->  (B, T, d)
      Q = attn.q_proj(query), K = attn.k_proj(key_value), V = attn.v_proj(key_value)   (each nn.Linear d -> d)
      split each into attn.n_heads heads: (B, L, d) -> (B, h, L, dh)
      head outputs: softmax(Q_h K_hᵀ / sqrt(dh)) V_h   (your scaled_dot_product_attention)
      concatenate the heads back to (B, T, d) and apply attn.out_proj.
    """
    raise NotImplementedError


def encoder_layer(x: torch.Tensor, mask: torch.Tensor, layer) -> torch.Tensor:
    """One pre-LN encoder layer with the modules of `layer` (a model.EncoderLayer)   (docs: "5. The layers")

    x (B, S, d), mask (B, 1, 1, S) True at real tokens  ->  (B, S, d)
      x = x + layer.drop(layer.self_attn(h, h, mask))   with h = layer.norm1(x)
      x = x + layer.drop(layer.ffn(layer.norm2(x)))
    """
    raise NotImplementedError
