"""The language-model head and its cross-entropy, a few hundred positions at a time (`--lm_loss chunked`).

The written-out path (model.py) makes the logits of every position at once, (B*T, V): for the
storybook GPT's 4,096 tokens per step (16 x 256) and 8,192-token vocabulary that is 33.6M numbers, 134 MB in fp32,
written and read again by the float conversion, the log-softmax and their backward passes. Here the
same loss is computed `CHUNK` rows at a time, so each chunk of logits stays in the CPU's cache:

    forward:   for each chunk: logits = h W^T (chunk, V);  keep logsumexp(logits) and logits[target]
               loss = mean over counted positions of (logsumexp - logit of the target)
    backward:  recompute each chunk's logits (one more matmul), softmax = exp(logits - logsumexp),
               d loss / d logits = (softmax - onehot(target)) / count  ->  dh = that @ W,  dW += thatᵀ @ h

Nothing of size (B*T, V) is ever kept. A test checks loss and gradients against F.cross_entropy.
Positions whose target is `ignore_index` are not counted (stage 7 masks prompts this way); a batch with
no counted position has loss 0, not NaN.
"""

from __future__ import annotations

import torch

CHUNK = 256  # rows of logits at a time: 256 x 8192 fp32 is 8 MB, within a server CPU core's cache share


class ChunkedLMHeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                ignore_index: int) -> torch.Tensor:
        """hidden (N, C), weight (V, C) (the tied lm_head), targets (N,) -> the mean cross-entropy ()."""
        device = hidden.device.type
        # Under autocast the matmuls run in its dtype (bf16), as nn.Linear's would; the softmax in fp32.
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
        counted = targets != ignore_index  # (N,)
        safe_targets = targets.masked_fill(~counted, 0)  # (N,) a valid index where ignored
        with torch.autocast(device, enabled=False):
            h, w = hidden.to(dtype), weight.to(dtype)
            logsumexp = torch.empty(h.size(0), dtype=torch.float32, device=h.device)  # (N,)
            target_logit = torch.empty_like(logsumexp)  # (N,)
            for start in range(0, h.size(0), CHUNK):
                rows = slice(start, start + CHUNK)
                logits = (h[rows] @ w.T).float()  # (chunk, V)
                logsumexp[rows] = torch.logsumexp(logits, dim=-1)
                target_logit[rows] = logits.gather(1, safe_targets[rows, None]).squeeze(1)
            count = counted.sum().clamp(min=1)
            loss = ((logsumexp - target_logit) * counted).sum() / count
        ctx.save_for_backward(h, w, safe_targets, logsumexp, counted, count)
        ctx.dtypes = hidden.dtype, weight.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        h, w, targets, logsumexp, counted, count = ctx.saved_tensors
        grad_h = torch.empty_like(h)  # (N, C)
        grad_w = torch.zeros(w.shape, dtype=torch.float32, device=w.device)  # (V, C), summed over chunks
        scale = (grad_loss / count) * counted  # (N,): 1/count where counted, 0 where ignored
        with torch.autocast(h.device.type, enabled=False):
            for start in range(0, h.size(0), CHUNK):
                rows = slice(start, start + CHUNK)
                probs = (h[rows] @ w.T).float().sub_(logsumexp[rows, None]).exp_()  # (chunk, V): softmax
                probs[torch.arange(probs.size(0), device=probs.device), targets[rows]] -= 1  # - onehot
                grad_logits = probs.mul_(scale[rows, None]).to(h.dtype)  # (chunk, V)
                grad_h[rows] = grad_logits @ w  # (chunk, C)
                grad_w += (grad_logits.T @ h[rows]).float()  # (V, C)
        return grad_h.to(ctx.dtypes[0]), grad_w.to(ctx.dtypes[1]), None, None


def chunked_lm_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                    ignore_index: int = -100) -> torch.Tensor:
    """F.cross_entropy(hidden @ weight.T, targets) for hidden (..., C) and targets (...), in chunks."""
    return ChunkedLMHeadLoss.apply(hidden.reshape(-1, hidden.size(-1)), weight, targets.reshape(-1), ignore_index)
