"""A stage 5 GPT turned into a classifier, with the choice of what to train: a head, the last blocks,
everything, or low-rank adapters (LoRA).

    ids (B, T), right-padded -> GPT blocks -> ln_f -> hidden state of each text's LAST real token (B, C)
                             -> head: Linear(C, num_classes) -> logits (B, num_classes)

Causal attention means the last token is the only position that has read the whole message, so it
is the one we classify from; padding after it cannot change it.

`Parts` holds the functions a learner writes in yours.py (`python -m shared.check stage6`): the
pooling, the freezing, and LoRA's forward pass and merged weight. The reference is the default.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from stage5_gpt.model import GPT

TRAINABLE = ("head", "last_block", "last_two_blocks", "all", "lora")
LORA_TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


def lora_forward(x: torch.Tensor, layer: LoRALinear) -> torch.Tensor:
    """y = base(x) + (alpha / r) · x Aᵀ Bᵀ: the frozen layer plus the low-rank update. x (..., in) -> (..., out)."""
    return layer.base(x) + (x @ layer.lora_A.t() @ layer.lora_B.t()) * layer.scale  # (..., out)


def lora_merged_weight(layer: LoRALinear) -> torch.Tensor:
    """The one matrix that computes the same as base + adapter: W + (alpha / r) · B A, (out, in)."""
    return layer.base.weight + layer.scale * layer.lora_B @ layer.lora_A


def last_token(hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The hidden state of each row's last real token: hidden (B, T, C), lengths (B,) -> (B, C).
    With causal attention it is the only position that has read the whole text."""
    return hidden[torch.arange(hidden.size(0), device=hidden.device), lengths - 1]  # (B, C)


def freeze(model: GPTClassifier, mode: str) -> None:
    """requires_grad for each --trainable mode: all: everything; last_block / last_two_blocks: those
    blocks and ln_f; head and lora: only the head (LoRA's adapters are added afterwards)."""
    model.requires_grad_(mode == "all")
    model.head.requires_grad_(True)
    if mode in ("last_block", "last_two_blocks"):
        for block in model.gpt.transformer.h[-(1 if mode == "last_block" else 2):]:
            block.requires_grad_(True)
        model.gpt.transformer.ln_f.requires_grad_(True)


@dataclass(frozen=True)
class Parts:
    """The functions the model is built from: `Parts()` is the reference, `Parts(**yours)` puts the
    learner's (from yours.py, through --yours) on top. The classifier pools with last_token and
    set_trainable freezes with freeze; each LoRA layer computes its output with lora_forward and
    folds its adapter into one weight with lora_merged_weight."""

    last_token: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = last_token
    freeze: Callable[[nn.Module, str], None] = freeze
    lora_forward: Callable[[torch.Tensor, nn.Module], torch.Tensor] = lora_forward
    lora_merged_weight: Callable[[nn.Module], torch.Tensor] = lora_merged_weight


class LoRALinear(nn.Module):
    """y = x Wᵀ + b + (alpha / r) · x Aᵀ Bᵀ, with W and b frozen and only A (r x in) and B (out x r) trained.

    B starts at zero, so before training the adapter changes nothing; r is far below in and out, so
    the update B·A has at most r directions and costs r · (in + out) parameters instead of in · out.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, parts: Parts | None = None):
        super().__init__()
        self.base, self.rank, self.scale, self.parts = base, rank, alpha / rank, parts or Parts()
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear initialises its weight
        base.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.parts.lora_forward(x, self)  # (..., out)

    def merged(self) -> nn.Linear:
        """One plain Linear computing the same function: W + (alpha / r) · B A."""
        linear = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(self.parts.lora_merged_weight(self))
            if self.base.bias is not None:
                linear.bias.copy_(self.base.bias)
        return linear.to(self.base.weight.device)


class GPTClassifier(nn.Module):
    def __init__(self, gpt: GPT, num_classes: int = 2, parts: Parts | None = None):
        super().__init__()
        self.gpt, self.parts = gpt, parts or Parts()
        self.head = nn.Linear(gpt.cfg.n_embd, num_classes)  # replaces the language-model head

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """idx (B, T) right-padded ids, lengths (B,) real tokens per row -> class logits (B, classes)."""
        hidden = self.gpt.features(idx)  # (B, T, C)
        return self.head(self.parts.last_token(hidden, lengths))  # (B, classes)


def set_trainable(model: GPTClassifier, mode: str, lora_rank: int = 8, lora_alpha: float = 16.0) -> None:
    """Freeze everything, then unfreeze `mode`'s part, with the classifier's freeze; the head always trains.

    last_block / last_two_blocks also train the final LayerNorm (ln_f), which reads the last block's
    output; lora wraps the attention and MLP projections of every block with adapters.
    """
    if mode not in TRAINABLE:
        raise ValueError(f"trainable must be one of {TRAINABLE}, not {mode!r}")
    model.parts.freeze(model, mode)
    if mode == "lora":  # the adapters, added after freezing, are what trains (with the head)
        for block in model.gpt.transformer.h:
            for path in LORA_TARGETS:
                parent_name, child_name = path.split(".")
                parent = getattr(block, parent_name)
                setattr(parent, child_name, LoRALinear(getattr(parent, child_name), lora_rank, lora_alpha, model.parts))


def merge_lora(model: nn.Module) -> int:
    """Replace every LoRALinear by its merged Linear (no extra cost at inference). Returns how many."""
    merged = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, name, child.merged())
                merged += 1
    return merged


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
