"""Build it yourself: a GPT's classification head, what to freeze, and LoRA. Write each function
below, then

    python -m shared.check stage6                     # one line per part: passed / not implemented yet / wrong
    python -m stage6_finetune_cls.train --yours       # finetune the real model with your parts

The reference is in model.py; try without it first. Theory: docs/stage6_finetune_cls.md (sections
named below). Shapes: B batch, T tokens (right-padded), C the GPT's width, r LoRA's rank.
"""

from __future__ import annotations

import torch


def last_token(hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The hidden state of each text's last real token      (docs: "2. The classification head and last-token pooling")

    hidden (B, T, C): the GPT's final hidden states of right-padded texts; lengths (B,): real tokens per
    row (row b's last real token is at position lengths[b] - 1)  ->  (B, C)
    """
    raise NotImplementedError


def freeze(model, mode: str) -> None:
    """Set requires_grad for a --trainable mode, in place            (docs: "3. Which layers to train")

    model: a model.GPTClassifier: model.head (the new Linear), model.gpt.transformer.h (the blocks,
    a list), model.gpt.transformer.ln_f (the final norm), and the rest of the GPT.
      "all":              every parameter trains
      "last_block":       the head, the last block and ln_f train; everything else is frozen
      "last_two_blocks":  the head, the last two blocks and ln_f
      "head", "lora":     only the head (LoRA's adapters are added after this, and train too)
    """
    raise NotImplementedError


def lora_forward(x: torch.Tensor, layer) -> torch.Tensor:
    """A LoRA layer's output                                       (docs: "4. LoRA")

    layer: a model.LoRALinear: layer.base (the frozen nn.Linear, in -> out), layer.lora_A (r, in),
    layer.lora_B (out, r), layer.scale = alpha / r
      y = base(x) + scale · x Aᵀ Bᵀ          x (..., in) -> y (..., out)
    """
    raise NotImplementedError


def lora_merged_weight(layer) -> torch.Tensor:
    """The single weight matrix computing the same as base + adapter (no extra cost at inference)  (docs: "4. LoRA")

    W' = W + scale · B A, shape (out, in); the bias stays the base's.
    """
    raise NotImplementedError
