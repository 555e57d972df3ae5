"""Build it yourself: the Transformer's parts. Write each function below, then

    python -m shared.check stage4            # one line per part: passed / not implemented yet / wrong
    python -m stage4_transformer.train --yours --preset cpu   # the real model, trained with your parts (~45 min
                                                              # on 2 CPU cores; --max_steps 200 for a first look)

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


def multi_head_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                         n_heads: int, attend) -> torch.Tensor:
    """n_heads attentions side by side, each on d / n_heads of the channels   (docs: "2. Multi-head attention")

    q (B, T, d), k and v (B, S, d): the queries, keys and values, already projected (X W^Q, X W^K, X W^V)
    mask as above (B, 1, T or 1, S)  ->  (B, T, d), the heads concatenated (model.py applies W^O after)
      split each of q, k, v into n_heads heads: (B, L, d) -> (B, h, L, dh)
      out = attend(q_h, k_h, v_h, mask)   all heads at once, (B, h, T, dh). Call the `attend` you are given,
                                          not your scaled_dot_product_attention: attend is yours plus the
                                          attention dropout of training (F.scaled_dot_product_attention
                                          with --attention sdpa)
      concatenate the heads back: (B, h, T, dh) -> (B, T, d)
    """
    raise NotImplementedError


def encoder_layer(layer, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One pre-LN encoder layer: the forward of `layer`, a model.EncoderLayer   (docs: "5. The layers")

    x (B, S, d), mask (B, 1, 1, S) True at real tokens  ->  (B, S, d)
      x = x + layer.drop(layer.self_attn(h, h, mask))   with h = layer.norm1(x)
      x = x + layer.drop(layer.ffn(layer.norm2(x)))
    """
    raise NotImplementedError
