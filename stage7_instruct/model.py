"""From a GPT that continues text to one that answers: the chat template, its special tokens, and the
two losses of this stage (supervised finetuning and DPO). The network is stage 5's GPT, unchanged.

    render_chat:   [("user", "Name a colour."), ("assistant", "Blue.")]
                -> ids   <|user|> Name a colour. <|assistant|> Blue. <|end|>
                   mask    0      0    0    0        0          1    1    1     (1 = a token the loss predicts)
    masked_lm_loss:    cross-entropy of the next token, summed over the masked-in targets / their count
    sequence_logprob:  log p(response | prompt), summed over the response's tokens, per row
    dpo_loss:          -log sigmoid(beta * [(log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))])

The three special tokens are single ids placed after the tokenizer's own: rows added to the embedding
(tied to the output head) and started at the mean of the trained rows, so each begins as "an average
token" rather than a random vector the rest of the network has never seen.

`Parts` holds the functions a learner writes in yours.py (`python -m shared.check stage7`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from stage5_gpt.data import Tokenizer
from stage5_gpt.model import GPT

SPECIAL_TOKENS = ("<|user|>", "<|assistant|>", "<|end|>")
ROLES = ("user", "assistant")


class ChatTokenizer:
    """A stage 5 tokenizer plus the template's special tokens, as single ids right after its own.

    Ordinary text never encodes to them (a user typing "<|end|>" gets the characters, not the token),
    and decoding drops them: the template lives in ids, never in strings.
    """

    def __init__(self, base: Tokenizer):
        if base.kind == "char":
            raise ValueError("a character-level model cannot read the chat template")
        self.base = base
        self.user, self.assistant, self.end = (base.size + i for i in range(len(SPECIAL_TOKENS)))
        self.eot = base.eot  # <|endoftext|>: the base model's own way to stop

    @property
    def size(self) -> int:
        return self.base.size + len(SPECIAL_TOKENS)

    def encode(self, text: str) -> list[int]:
        return self.base.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.base.decode([int(i) for i in ids if int(i) < self.base.size])

    def to_json(self) -> dict:
        return self.base.to_json()

    @classmethod
    def from_json(cls, data: dict) -> ChatTokenizer:
        return cls(Tokenizer.from_json(data))


def render_chat(turns: Sequence[tuple[str, str]], tokenizer: ChatTokenizer,
                mask_prompt: bool = True) -> tuple[list[int], list[bool]]:
    """A conversation -> (ids, mask), one entry per token.

    Each user turn is <|user|> text, each assistant turn <|assistant|> text <|end|>. mask[i] is True when
    token i is a target of the loss: the assistant's text and its <|end|> (with mask_prompt=False, every
    token but the first, which nothing predicts). A conversation ending in a user turn gets a bare
    <|assistant|> at the end: the prompt from which the model writes its reply.
    """
    ids: list[int] = []
    mask: list[bool] = []
    for role, text in turns:
        if role not in ROLES:
            raise ValueError(f"role must be user or assistant, not {role!r}")
        if role == "user":
            part = [tokenizer.user] + tokenizer.encode(text)
            ids += part
            mask += [not mask_prompt] * len(part)
        else:
            ids.append(tokenizer.assistant)
            mask.append(not mask_prompt)
            part = tokenizer.encode(text) + [tokenizer.end]
            ids += part
            mask += [True] * len(part)
    if turns and turns[-1][0] == "user":
        ids.append(tokenizer.assistant)
        mask.append(not mask_prompt)
    if mask:
        mask[0] = False  # the first token has no token before it to be predicted from
    return ids, mask


def masked_lm_loss(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the targets the mask selects.

    logits (B, T, V) at each position predict ids at the next one; mask (B, T) marks which tokens are
    targets, so position t's prediction counts when mask[:, t + 1] is set. The sum over selected targets
    is divided by their count (every supervised token weighs the same, whatever the batch's lengths);
    a batch that selects none gives 0, not NaN.
    """
    targets, weights = ids[:, 1:], mask[:, 1:].float()  # (B, T-1)
    nll = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                          reduction="none").view_as(weights)  # (B, T-1)
    return (nll * weights).sum() / weights.sum().clamp(min=1.0)


def sequence_logprob(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p(selected tokens | everything before them), summed per row: logits (B, T, V), ids and
    mask (B, T) -> (B,). With the mask on the response, this is log p(response | prompt)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
    picked = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
    return (picked * mask[:, 1:].float()).sum(-1)  # (B,)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Direct Preference Optimization (Rafailov et al., 2023) on per-row log-probabilities (B,) each.

    The implicit reward of a response is beta * (log pi(y) - log ref(y)): how much more likely the
    policy makes it than the frozen reference. The loss -log sigmoid(reward_chosen - reward_rejected)
    pushes the chosen response's reward above the rejected one's; it is ln 2 while the two models agree.
    Returns (mean loss, chosen rewards (B,), rejected rewards (B,)); the rewards carry no gradient.
    """
    chosen_logratio = policy_chosen - ref_chosen.detach()  # (B,); the reference is frozen: no gradient
    rejected_logratio = policy_rejected - ref_rejected.detach()  # (B,)
    loss = -F.logsigmoid(beta * (chosen_logratio - rejected_logratio)).mean()
    return loss, (beta * chosen_logratio).detach(), (beta * rejected_logratio).detach()


@dataclass(frozen=True)
class Parts:
    """The functions this stage is built from: `Parts()` is the reference, `Parts(**yours)` puts the
    learner's (yours.py, through --yours) on top. Training renders every example with render_chat and
    scores it with masked_lm_loss (SFT) or sequence_logprob and dpo_loss (DPO)."""

    render_chat: Callable[..., tuple[list[int], list[bool]]] = render_chat
    masked_lm_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] = masked_lm_loss
    sequence_logprob: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] = sequence_logprob
    dpo_loss: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = dpo_loss


def add_special_rows(gpt: GPT, tokenizer: ChatTokenizer) -> int:
    """Give a stage 5 GPT a row for each special token: the embedding grows (its output head is tied to
    it) where the model lacks them, and every special row starts at the mean of the tokenizer's trained
    rows. GPT-2's vocabulary is padded from 50,257 to 50,304 rows, so there the special tokens take three
    padding rows (never trained); the storybook BPE's 8,192 rows grow to 8,195. Returns the rows added."""
    wte = gpt.transformer.wte
    have = wte.num_embeddings
    if have < tokenizer.size:
        new = nn.Embedding(tokenizer.size, gpt.cfg.n_embd).to(wte.weight.device, wte.weight.dtype)
        with torch.no_grad():
            new.weight[:have] = wte.weight
        gpt.transformer.wte = new
        gpt.lm_head = nn.Linear(gpt.cfg.n_embd, tokenizer.size, bias=False).to(wte.weight.device)
        gpt.lm_head.weight = new.weight  # still tied: one matrix reads and writes tokens
        gpt.cfg = replace(gpt.cfg, vocab_size=tokenizer.size)
    with torch.no_grad():
        weight = gpt.transformer.wte.weight
        weight[tokenizer.base.size:tokenizer.size] = weight[:tokenizer.base.size].mean(0)
    return max(0, tokenizer.size - have)
