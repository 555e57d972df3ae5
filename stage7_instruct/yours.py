"""Build it yourself: the chat template and the two losses that turn a GPT into an assistant. Write
each function below, then

    python -m shared.check stage7                 # one line per part: passed / not implemented yet / wrong
    python -m stage7_instruct.train --yours       # instruction-tune the real model with your parts (~15 min on
                                                  # 2 CPU cores, after make pretrain; --max_steps 250 for a look)
    python -m stage7_instruct.dpo --yours         # and preference-tune it (~6 min)

The reference is in model.py; try without it first. Theory: docs/stage7_instruct.md (sections named
below). Shapes: B batch, T tokens (right-padded), V vocabulary.
"""

from __future__ import annotations

import torch


def render_chat(turns, tokenizer, mask_prompt: bool = True) -> tuple[list[int], list[bool]]:
    """A conversation -> (ids, mask), one entry per token        (docs: "2. The chat template")

    turns: [(role, text), ...], role "user" or "assistant"; tokenizer: a model.ChatTokenizer with
    .user, .assistant, .end (the special ids) and .encode(text).
      user turn:       <|user|> + encode(text)                         mask False
      assistant turn:  <|assistant|>  (mask False) + encode(text) + <|end|>   (mask True)
      ends with a user turn: one more <|assistant|> (mask False): the prompt the model replies to
    mask_prompt=False: every mask entry is True instead, except the very first token's.
    The first token's mask is always False (nothing comes before it to predict it from).
    """
    raise NotImplementedError


def masked_lm_loss(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy over the masked-in targets only    (docs: "3. Supervised finetuning")

    logits (B, T, V) at position t predict ids[:, t + 1]; mask (B, T) says which tokens are targets, so
    position t counts when mask[:, t + 1] is True. Return the SUM of the selected targets' losses divided
    by their COUNT (a scalar); a batch selecting none returns 0, never NaN.
    """
    raise NotImplementedError


def sequence_logprob(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p(response | prompt) per row                             (docs: "4. DPO")

    The same shift as masked_lm_loss: sum over t of log softmax(logits[:, t])[ids[:, t + 1]] where
    mask[:, t + 1] is True.   logits (B, T, V), ids (B, T), mask (B, T)  ->  (B,)
    """
    raise NotImplementedError


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DPO loss and the implicit rewards                         (docs: "4. DPO")

    Each input (B,): log p of the chosen / rejected response under the policy and the frozen reference.
      reward_chosen   = beta * (policy_chosen - ref_chosen)
      reward_rejected = beta * (policy_rejected - ref_rejected)
      loss = mean of -log sigmoid(reward_chosen - reward_rejected)
    The reference is frozen: no gradient may reach ref_chosen / ref_rejected. Return (loss, reward_chosen,
    reward_rejected), the rewards detached.
    """
    raise NotImplementedError
