"""The checks of stage 7's build-it-yourself parts (yours.py), run by `python -m shared.check stage7`.

Each part runs on small inputs made here (a byte-level tokenizer with no merges, random logits, fixed
seeds) and is compared with the reference in model.py, values and gradients; the common mistakes (the
prompt left in the loss, the mask shifted by one, the mean over every token, the reference left
trainable, beta applied twice) are recognised and named. `train --yours` and `dpo --yours` run with
your parts (model.Parts).
"""

from __future__ import annotations

import math

import torch

from shared.check import Part, Wrong, same, same_grads, same_or_named, seeded
from stage5_gpt.bpe import BPE
from stage5_gpt.data import Tokenizer
from stage7_instruct import model as reference
from stage7_instruct.model import ChatTokenizer

CONVERSATIONS = [
    [("user", "Name a colour."), ("assistant", "Blue.")],
    [("user", "Hi"), ("assistant", "Hello!"), ("user", "Again?")],
    [("user", "One"), ("assistant", "Two"), ("user", "Three"), ("assistant", "Four")],
]


def _tokenizer() -> ChatTokenizer:
    return ChatTokenizer(Tokenizer("bpe", bpe=BPE([])))  # bytes only: 256 ids + <|endoftext|>, then the specials


def check_render_chat(yours) -> None:
    tokenizer = _tokenizer()
    for turns in CONVERSATIONS:
        for mask_prompt in (True, False):
            want_ids, want_mask = reference.render_chat(turns, tokenizer, mask_prompt)
            got = yours(turns, tokenizer, mask_prompt)
            if not (isinstance(got, tuple) and len(got) == 2):
                raise Wrong("render_chat must return a tuple (ids, mask)")
            ids, mask = [int(i) for i in got[0]], [bool(m) for m in got[1]]
            where = f"{turns!r} (mask_prompt={mask_prompt})"
            if ids != want_ids:
                if tokenizer.end not in ids:
                    raise Wrong(f"{where}: no <|end|> ({tokenizer.end}) after the assistant's text")
                first = next((i for i, (a, b) in enumerate(zip(ids, want_ids)) if a != b), min(len(ids), len(want_ids)))
                raise Wrong(f"{where}: the ids differ first at position {first} (expected {want_ids[first:first + 3]}, "
                            f"got {ids[first:first + 3]})")
            if len(mask) != len(ids):
                raise Wrong(f"{where}: {len(mask)} mask entries for {len(ids)} ids; one per token")
            if mask != want_mask:
                if mask[1:] == want_mask[:-1] or mask[:-1] == want_mask[1:]:
                    raise Wrong(f"{where}: the mask is shifted by one token; mask[i] belongs to ids[i] (True on "
                                f"the assistant's text and its <|end|>)")
                if mask_prompt and any(m and ids[i] in (tokenizer.user, tokenizer.assistant) or
                                       m and not want_mask[i] for i, m in enumerate(mask)):
                    raise Wrong(f"{where}: the prompt is in the loss: mask is True on a prompt token (the user's "
                                f"turn or <|assistant|>)")
                first = next(i for i, (a, b) in enumerate(zip(mask, want_mask)) if a != b)
                raise Wrong(f"{where}: mask differs at token {first} (id {ids[first]}): expected {want_mask[first]}")


def _lm_inputs():
    seeded(0)
    logits = torch.randn(2, 6, 11, requires_grad=True)
    ids = torch.randint(0, 11, (2, 6))
    mask = torch.tensor([[0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 1, 1]], dtype=torch.bool)
    return logits, ids, mask


def check_masked_lm_loss(yours) -> None:
    logits, ids, mask = _lm_inputs()
    got = yours(logits, ids, mask)
    expected = reference.masked_lm_loss(logits, ids, mask)
    if isinstance(got, torch.Tensor) and got.shape == expected.shape:
        shifted = [reference.masked_lm_loss(logits, ids, torch.roll(mask, step, dims=1)) for step in (1, -1)]
        everything = reference.masked_lm_loss(logits, ids, torch.ones_like(mask))
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), ids[:, 1:].reshape(-1),
                                                reduction="none").view(2, 5)
        per_row = ((nll * mask[:, 1:]).sum(1) / mask[:, 1:].sum(1)).mean()
        said = ("the mask is shifted by one: position t's prediction counts when mask[:, t + 1] is set (the "
                "target's mask, not the input's)")
        for wrong, why in ((shifted[0], said), (shifted[1], said),
                           (everything, "the loss counts every token: the prompt (mask False) is in it"),
                           (per_row, "each row's mean is averaged: divide the sum over all selected targets by "
                                     "their count, so every supervised token weighs the same")):
            if torch.allclose(got.detach(), wrong.detach(), atol=1e-5) and not torch.allclose(wrong, expected):
                raise Wrong(why)
    same("the loss", expected, got)
    same_grads("backward", torch.autograd.grad(expected, [logits]),
               torch.autograd.grad(got, [logits], allow_unused=True), ["logits"])
    none = yours(logits, ids, torch.zeros_like(mask))
    if not isinstance(none, torch.Tensor) or not torch.isfinite(none).all():
        raise Wrong("a batch with no supervised token gives NaN; clamp the count at 1 (the loss is then 0)")
    same("the loss of a batch with no supervised token", torch.zeros(()), none)


def check_sequence_logprob(yours) -> None:
    logits, ids, mask = _lm_inputs()
    got = yours(logits, ids, mask)
    expected = reference.sequence_logprob(logits, ids, mask)
    counted = mask[:, 1:].sum(-1).to(expected.dtype)  # the response tokens of each row
    same_or_named("log p(response | prompt) per row", expected, got,
                  [("that is the mean over the response tokens: DPO compares sums, the log-probability of the "
                    "whole response", expected / counted)])
    grad = torch.randn(2)
    same_grads("backward", torch.autograd.grad(expected, [logits], grad),
               torch.autograd.grad(got, [logits], grad, allow_unused=True), ["logits"])


def check_dpo_loss(yours) -> None:
    seeded(0)
    policy = torch.randn(4, 2, requires_grad=True)
    ref = torch.randn(4, 2, requires_grad=True)  # a reference left trainable would receive gradients
    beta = 0.3
    got = yours(policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1], beta)
    if not (isinstance(got, tuple) and len(got) == 3):
        raise Wrong("dpo_loss must return (loss, chosen rewards, rejected rewards)")
    expected = reference.dpo_loss(policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1], beta)
    if isinstance(got[0], torch.Tensor) and got[0].shape == ():
        twice = reference.dpo_loss(policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1], beta * beta)[0]
        if torch.allclose(got[0].detach(), twice.detach(), atol=1e-6):
            raise Wrong("beta is applied twice: it scales the log-ratio difference once")
    same("the loss", expected[0], got[0])
    same("the chosen rewards beta * (policy - ref)", expected[1], got[1])
    same("the rejected rewards", expected[2], got[2])
    grads = torch.autograd.grad(got[0], [policy, ref], allow_unused=True)
    if grads[1] is not None and grads[1].abs().max() > 0:
        raise Wrong("the reference model is left trainable: gradients reach ref_chosen / ref_rejected; detach them "
                    "(the reference is frozen)")
    same_grads("backward", torch.autograd.grad(expected[0], [policy]), grads[:1], ["the policy's log-probabilities"])
    equal = yours(policy[:, 0].detach(), policy[:, 1].detach(), policy[:, 0].detach(), policy[:, 1].detach(), beta)
    same("the loss when the policy is the reference (ln 2)", torch.tensor(math.log(2)), equal[0])


PARTS = [
    Part("render_chat", check_render_chat,
         "ids += [tokenizer.user] + tokenizer.encode(text) for a user turn; [tokenizer.assistant] + encode(text) + "
         "[tokenizer.end] for an assistant turn, the mask True on encode(text) + [end]"),
    Part("masked_lm_loss", check_masked_lm_loss,
         "F.cross_entropy(logits[:, :-1] ..., ids[:, 1:] ..., reduction='none'), times mask[:, 1:], summed, "
         "divided by mask[:, 1:].sum().clamp(min=1)"),
    Part("sequence_logprob", check_sequence_logprob,
         "log_softmax(logits[:, :-1]).gather(-1, ids[:, 1:, None]), times mask[:, 1:], summed over time"),
    Part("dpo_loss", check_dpo_loss,
         "-F.logsigmoid(beta * ((pc - rc.detach()) - (pr - rr.detach()))).mean(), rewards beta * (p - r) detached"),
]

# --yours needs no other setting: every part is on the path training always runs.
YOURS_SETTINGS: dict = {}
