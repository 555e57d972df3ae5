"""Choosing the next token from a language model's logits: temperature, top-k and top-p (nucleus).

Used by stage 2 (RNN/LSTM generation) and stage 5 (GPT generation).

    logits / temperature        < 1 sharpens the distribution, > 1 flattens it, 0 means greedy
    top-k                       keep the k most likely tokens
    top-p                       keep the smallest set of most likely tokens whose probability >= p
    softmax, then sample        the tokens removed above get probability exactly 0
"""

from __future__ import annotations

import torch

from shared.cli import check


def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    check(temperature >= 0, "--temperature must be >= 0 (0 = greedy)")
    check(top_k >= 0, "--top_k must be >= 0 (0 = off)")
    check(0 < top_p <= 1, "--top_p must be in (0, 1] (1 = off)")


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set the logits of tokens outside the top-k and outside the nucleus to -inf. logits: (B, V)."""
    logits = logits.clone()
    if 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits[logits < kth] = float("-inf")
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the tokens ranked above it already hold >= top_p of the mass;
        # the most likely token always stays.
        mass_before = torch.cumsum(probs, dim=-1) - probs  # (B, V)
        drop_sorted = mass_before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits[drop] = float("-inf")
    return logits


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0,
                     top_p: float = 1.0) -> torch.Tensor:
    """The distribution the next token is drawn from. logits: (B, V) -> probs (B, V)."""
    logits = logits.float()
    if temperature == 0:  # greedy: all mass on the arg-max
        return torch.zeros_like(logits).scatter(-1, logits.argmax(-1, keepdim=True), 1.0)
    return torch.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw the next token id for each row. logits: (B, V) -> ids (B, 1)."""
    probs = next_token_probs(logits, temperature, top_k, top_p)
    if temperature == 0:
        return probs.argmax(-1, keepdim=True)
    return torch.multinomial(probs, 1, generator=generator)  # (B, 1)
