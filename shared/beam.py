"""Greedy and beam-search decoding for the encoder-decoder models of stages 3 and 4.

A model decodes through three methods, so one search serves the GRU and the Transformer:

    state = model.decode_start(src (B, S), src_len (B,))    encode once; the decoder's starting state
    log_probs, state = model.decode_step(prev (N,), state)  one target position: (N, V) log-probabilities
    state = model.reorder_state(state, index (N',))         keep / repeat rows (beams) of every tensor

Beam search keeps the `beam_size` best partial translations per sentence by total log-probability.
A hypothesis that emits <eos> is finished and scored by log p / lp(length), with GNMT's length
penalty lp(n) = ((5 + n) / 6) ** alpha (alpha = 0: raw log p, which favours short outputs). A
sentence is done when it has `beam_size` finished hypotheses; the best of them is returned.

Greedy decoding takes its step as an argument: `greedy_step` below is the reference, and stage 3's
learner writes their own (stage3_attention_seq2seq/yours.py); the model's `parts.greedy_step` is
what `greedy_step_of` hands it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from shared.tokenizers import BOS_ID, EOS_ID, PAD_ID


def greedy_step(model, prev: torch.Tensor, state, finished: torch.Tensor):
    """One step of greedy decoding: feed the previous tokens prev (B,), take the most probable next
    token of each sentence; a sentence already finished (it emitted <eos>) gets <pad> instead, and one
    that emits <eos> now is finished. -> (next tokens (B,), the model's new state, finished (B,))."""
    log_probs, state = model.decode_step(prev, state)  # (B, V)
    next_ids = log_probs.argmax(-1).masked_fill(finished, PAD_ID)  # (B,)
    return next_ids, state, finished | (next_ids == EOS_ID)


def greedy_step_of(model) -> Callable:
    """The greedy step a model was built with (stage 3's `Parts`: the learner's under --yours), or
    the reference above for a model whose parts have none (stage 4's)."""
    return getattr(getattr(model, "parts", None), "greedy_step", greedy_step)


@torch.no_grad()
def greedy_decode(model, src: torch.Tensor, src_len: torch.Tensor, max_len: int,
                  step: Callable = greedy_step) -> list[list[int]]:
    """The most probable next token at every step, until <eos> (not included in the output);
    `step(model, prev, state, finished)` is one step of it (greedy_step above, or another)."""
    state = model.decode_start(src, src_len)
    batch = src.size(0)
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)  # (B,)
    out = torch.zeros(batch, 0, dtype=torch.long, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        prev, state, finished = step(model, prev, state, finished)  # (B,)
        out = torch.cat([out, prev[:, None]], dim=1)  # (B, t)
        if finished.all():
            break
    return [_until_eos(row) for row in out.tolist()]


def _until_eos(ids: list[int]) -> list[int]:
    return ids[:ids.index(EOS_ID)] if EOS_ID in ids else ids


def length_penalty(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha


@torch.no_grad()
def beam_search(model, src: torch.Tensor, src_len: torch.Tensor, beam_size: int, max_len: int,
                alpha: float = 0.6) -> list[list[int]]:
    """Batched beam search: all sentences and all their beams advance together as B*K rows."""
    batch, k, device = src.size(0), beam_size, src.device
    state = model.decode_start(src, src_len)
    state = model.reorder_state(state, torch.arange(batch, device=device).repeat_interleave(k))  # B*K rows
    tokens = torch.full((batch * k, 1), BOS_ID, dtype=torch.long, device=device)  # (B*K, t)
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: only the first may expand, or we get K copies
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    done = [False] * batch
    for _ in range(max_len):
        log_probs, state = model.decode_step(tokens[:, -1], state)  # (B*K, V)
        vocab = log_probs.size(-1)
        total = (scores.view(-1, 1) + log_probs.float()).view(batch, k * vocab)  # (B, K*V)
        # 2K candidates: even if K of them end in <eos>, K remain to continue.
        cand_scores, cand = total.topk(2 * k, dim=-1)  # (B, 2K)
        cand_beam, cand_token = cand // vocab, cand % vocab  # (B, 2K)
        is_eos = cand_token == EOS_ID
        # Finished hypotheses: <eos> among the K best candidates (a worse one would not survive anyway).
        for b, j in (is_eos[:, :k] & torch.isfinite(cand_scores[:, :k])).nonzero().tolist():
            if not done[b]:
                row = b * k + int(cand_beam[b, j])
                hyp = tokens[row, 1:].tolist()
                finished[b].append((float(cand_scores[b, j]) / length_penalty(len(hyp) + 1, alpha), hyp))
                done[b] = len(finished[b]) >= k
        if all(done):
            break
        # The K best candidates that do not end in <eos> continue.
        alive_scores, pick = cand_scores.masked_fill(is_eos, float("-inf")).topk(k, dim=-1)  # (B, K)
        rows = (torch.arange(batch, device=device)[:, None] * k + cand_beam.gather(1, pick)).view(-1)  # (B*K,)
        tokens = torch.cat([tokens[rows], cand_token.gather(1, pick).view(-1, 1)], dim=1)  # (B*K, t+1)
        scores = alive_scores
        state = model.reorder_state(state, rows)
    results = []
    for b in range(batch):
        if not finished[b]:  # nothing ended before max_len: the best unfinished beams compete
            for j in range(k):
                if torch.isfinite(scores[b, j]):
                    hyp = tokens[b * k + j, 1:].tolist()
                    finished[b].append((float(scores[b, j]) / length_penalty(len(hyp), alpha), hyp))
        results.append(max(finished[b], key=lambda item: item[0])[1])
    return results
