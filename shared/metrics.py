"""Metrics several stages report: classification accuracy / macro-F1 / confusion matrix, and a
language model's loss, perplexity, bits per character / byte and next-token accuracy (stages 2 and 5)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

TOP_K = (1, 5)


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> dict:
    """accuracy, macro-F1 (every class weighs the same) and the confusion matrix (rows = true class)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    labels = list(range(num_classes))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def format_confusion(matrix: Sequence[Sequence[int]], names: Sequence[str]) -> str:
    width = max(6, *(len(n) for n in names))
    lines = ["true \\ pred".ljust(width + 2) + "".join(n[:width].rjust(width + 1) for n in names)]
    for name, row in zip(names, matrix):
        lines.append(name[:width].ljust(width + 2) + "".join(str(v).rjust(width + 1) for v in row))
    return "\n".join(lines)


def next_token_hits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """How many targets the model ranks first, and how many among its 5 most likely tokens: (2,) counts.

    logits (N, V), targets (N,). Accuracy is hits / N: a plainer number than perplexity, and one that
    shows what sampling is up against (the right token is not the likeliest one most of the time).
    """
    top = logits.topk(max(TOP_K), dim=-1).indices  # (N, 5), most likely first
    hit = top == targets[:, None]  # (N, 5): at most one True per row
    return torch.stack([hit[:, :k].any(dim=-1).sum() for k in TOP_K])  # (2,)


def next_token_accuracy(prefix: str, hits: torch.Tensor | Sequence[int], count: int) -> dict[str, float]:
    return {f"{prefix}_top{k}_accuracy": float(h) / max(1, count) for k, h in zip(TOP_K, hits)}


def perplexity(nats_per_unit: float) -> float:
    """exp(loss); infinite rather than an overflow for a loss no model should have (a diverged one)."""
    return math.exp(nats_per_unit) if nats_per_unit < 700 else math.inf


def lm_metrics(prefix: str, nats: float, tokens: int, *, unit: str = "", chars: int = 0, words: int = 0,
               n_bytes: int = 0, hits: Sequence[int] = ()) -> dict[str, float]:
    """A language model's numbers from its summed cross-entropy `nats` over `tokens` predicted tokens:
    loss and perplexity per token, the next-token accuracy (top-1, top-5) when the hits are given, and
    the units that compare models with different tokenizers: bits per `unit` when a token is one
    (stage 2: char or word), bits per UTF-8 byte, nats and bits per character, perplexity per word."""
    loss = nats / tokens
    out = {f"{prefix}_loss": loss, f"{prefix}_perplexity": perplexity(loss),
           **(next_token_accuracy(prefix, hits, tokens) if len(hits) else {})}
    if unit:
        out[f"{prefix}_bits_per_{unit}"] = loss / math.log(2)
    if n_bytes:
        out[f"{prefix}_bits_per_byte"] = nats / n_bytes / math.log(2)
    if chars:
        out[f"{prefix}_loss_per_char"] = nats / chars
        out[f"{prefix}_bpc"] = nats / chars / math.log(2)
    if words:
        out[f"{prefix}_word_perplexity"] = perplexity(nats / words)
    return out
