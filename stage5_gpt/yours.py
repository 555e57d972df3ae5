"""Build it yourself: the GPT's parts. Write each function below, then

    python -m shared.check stage5            # one line per part: passed / not implemented yet / wrong
    python -m stage5_gpt.train --yours       # the real model, trained with your parts; its closing sample
                                             # runs your kv_cache_update and top_k_filter (top-k 40)
    python -m stage5_gpt.generate --yours --top_p 0.9   # sampling that runs your top_p_filter too

The reference is in model.py and shared/sampling.py; try without it first. Theory: docs/stage5_gpt.md
(sections named below). Shapes: B batch, nh heads, T new positions, S positions so far (S >= T), hd
head size, V vocabulary.
"""

from __future__ import annotations

import math  # noqa: F401

import torch
from torch import nn  # noqa: F401


def causal_self_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / sqrt(hd) + causal mask) v                      (docs: "2. The causal mask")

    q (B, nh, T, hd) are the queries of the LAST T of the S positions that k and v (B, nh, S, hd) hold
    (T = S in training; T = 1 when generating with a KV cache). Query i sits at position S - T + i and
    may see keys 0 .. S - T + i, never a later one (those scores become -inf before the softmax).
    Returns the output (B, nh, T, hd) and the weights (B, nh, T, S).
    """
    raise NotImplementedError


def kv_cache_update(past: tuple[torch.Tensor, torch.Tensor] | None, k: torch.Tensor,
                    v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer's KV cache after T new tokens                        (docs: "5. Sampling and the KV cache")

    past: None (nothing cached yet) or (k_past, v_past), each (B, nh, P, hd); k, v (B, nh, T, hd) new.
    Returns the keys and values of all P + T tokens, oldest first: each (B, nh, P + T, hd).
    """
    raise NotImplementedError


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row; every other becomes -inf  (docs: "5. Sampling and the KV cache")

    logits (B, V), 1 <= k <= V  ->  (B, V). Do not change the input tensor.
    """
    raise NotImplementedError


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus sampling: keep the smallest set of most likely tokens whose probabilities add up to at
    least p; every other logit becomes -inf                           (docs: "5. Sampling and the KV cache")

    logits (B, V), 0 < p <= 1  ->  (B, V). Sort by probability; a token stays if the tokens ranked above
    it hold less than p (so the token whose probability crosses p stays, and the most likely always does).
    """
    raise NotImplementedError


def init_gpt2(model) -> None:
    """GPT-2's initialisation of `model` (a model.GPT), in place       (docs: "3. The GPT block")

    every nn.Linear and nn.Embedding weight ~ N(0, 0.02²); every Linear bias = 0 (norms keep gain 1, bias 0);
    then the weights named "...c_proj.weight" (the projections that write into the residual stream)
    ~ N(0, (0.02 / sqrt(2 * model.cfg.n_layer))²), so the stream's variance does not grow with depth.
    """
    raise NotImplementedError
