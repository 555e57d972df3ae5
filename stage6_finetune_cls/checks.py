"""The checks of stage 6's build-it-yourself parts (yours.py), run by `python -m shared.check stage6`.

Each part runs on a small GPT classifier built here (random weights, fixed seeds) and is compared
with the reference: the pooled states and their gradients, which parameters train in each mode, the
LoRA layer's output and gradients, and that the merged weight gives the same outputs. `train --yours`
builds the classifier with your parts (model.Parts).
"""

from __future__ import annotations

import torch

from shared.check import Part, Wrong, same, same_grads, same_or_named, seeded
from stage5_gpt.model import GPT, GPTConfig
from stage6_finetune_cls import model as reference
from stage6_finetune_cls.model import TRAINABLE, GPTClassifier, LoRALinear


def _classifier() -> GPTClassifier:
    seeded(0)
    return GPTClassifier(GPT(GPTConfig(vocab_size=30, block_size=16, n_layer=3, n_head=2, n_embd=8)), 2)


def check_last_token(yours) -> None:
    seeded(0)
    hidden = torch.randn(3, 6, 4, requires_grad=True)
    lengths = torch.tensor([6, 2, 1])
    got = yours(hidden, lengths)
    same_or_named("the pooled states", reference.last_token(hidden, lengths), got,
                  [("that is every row's last position, padding included: row b's last real token is at "
                    "lengths[b] - 1", hidden[:, -1])])
    grad = torch.randn(3, 4)
    same_grads("backward", torch.autograd.grad(reference.last_token(hidden, lengths), [hidden], grad),
               torch.autograd.grad(got, [hidden], grad, allow_unused=True), ["hidden"])


def check_freeze(yours) -> None:
    for mode in TRAINABLE:
        expected, model = _classifier(), _classifier()
        model.requires_grad_(mode != "all")  # start from the opposite of what most modes want
        reference.freeze(expected, mode)
        yours(model, mode)
        want = {n for n, p in expected.named_parameters() if p.requires_grad}
        got = {n for n, p in model.named_parameters() if p.requires_grad}
        if want != got:
            extra, missing = sorted(got - want), sorted(want - got)
            raise Wrong(f"--trainable {mode}: " + "; ".join(
                part for part in (f"these should be frozen: {', '.join(extra[:4])}" if extra else "",
                                  f"these should train: {', '.join(missing[:4])}" if missing else "") if part))


def _lora_layer(alpha=16.0, rank=4) -> LoRALinear:
    seeded(0)
    layer = LoRALinear(torch.nn.Linear(6, 5), rank, alpha)
    with torch.no_grad():
        layer.lora_B.normal_()  # B starts at zero; a trained B is not
    return layer


def check_lora_forward(yours) -> None:
    layer = _lora_layer()
    x = torch.randn(2, 3, 6, requires_grad=True)
    got = yours(x, layer)
    same("the output (with a trained B, alpha 16, r 4)", reference.lora_forward(x, layer), got)
    params = [x, layer.lora_A, layer.lora_B]
    grad = torch.randn(2, 3, 5)
    same_grads("backward", torch.autograd.grad(reference.lora_forward(x, layer), params, grad),
               torch.autograd.grad(got, params, grad, allow_unused=True), ["x", "lora_A", "lora_B"])


def check_lora_merged_weight(yours) -> None:
    layer = _lora_layer()
    got = yours(layer)
    with torch.no_grad():
        unscaled = layer.base.weight + layer.lora_B @ layer.lora_A
    same_or_named("the merged weight", reference.lora_merged_weight(layer), got,
                  [("that is W + B @ A without the scale: the adapter is multiplied by layer.scale = alpha / r",
                    unscaled)])
    x = torch.randn(4, 6)
    if isinstance(got, torch.Tensor) and got.shape == (5, 6):
        same("a plain Linear with your merged weight, against the LoRA layer", reference.lora_forward(x, layer),
             x @ got.t() + layer.base.bias)


PARTS = [
    Part("last_token", check_last_token,
         "hidden[torch.arange(B), lengths - 1]: one row index and one position per text"),
    Part("freeze", check_freeze,
         "model.requires_grad_(mode == 'all'), then turn on the head and, for the block modes, "
         "model.gpt.transformer.h[-1:] or [-2:] and ln_f"),
    Part("lora_forward", check_lora_forward, "base(x) + (x @ A.t() @ B.t()) * layer.scale: scale is alpha / r"),
    Part("lora_merged_weight", check_lora_merged_weight, "W + scale * B @ A: (out, r) @ (r, in) = (out, in)"),
]

# --yours needs no other setting: every part is on the path the classifier always runs.
YOURS_SETTINGS: dict = {}
