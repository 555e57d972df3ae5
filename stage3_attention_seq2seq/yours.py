"""Build it yourself: attention for the encoder-decoder, and greedy decoding. Write each function
below, then

    python -m shared.check stage3                     # one line per part: passed / not implemented yet / wrong
    python -m stage3_attention_seq2seq.train --yours  # the real model, trained and decoded with your parts

The reference is in model.py and shared/beam.py; try without it first. Theory: docs/stage3_attention.md
(sections named below). Shapes: B batch, S source tokens, D decoder state size, E encoder state size
(2 x the GRU's units: both directions), A the additive attention's hidden size, V target vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401


def additive_attention(s: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                       W: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bahdanau's attention                           (docs: "2. Attention", "3. Additive vs multiplicative scores")

    s (B, D): the decoder's state;  values (B, S, E): the encoder states h_j;
    keys (B, S, A): U h_j + b, computed once per sentence (they do not change while decoding);
    mask (B, S): True at real source tokens, False at padding;  W (A, D), v (A,)
      e_j = vᵀ tanh(W s + keys_j)           one score per source token
      a   = softmax(e) over the real tokens  (padding gets weight exactly 0)
      c   = Σ_j a_j h_j                      the context: a new summary of the source for this step
    Returns (c (B, E), a (B, S)).
    """
    raise NotImplementedError


def multiplicative_attention(s: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                             mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Luong's "general" attention                    (docs: "3. Additive vs multiplicative scores")

    s (B, D), keys (B, S, D): W h_j computed once, values (B, S, E), mask (B, S) as above
      e_j = s · keys_j,  a = softmax(e) over the real tokens,  c = Σ_j a_j h_j
    Returns (c (B, E), a (B, S)).
    """
    raise NotImplementedError


def greedy_step(model, prev: torch.Tensor, state, finished: torch.Tensor):
    """One step of greedy decoding                   (docs: "5. Decoding: greedy and beam search")

    model.decode_step(prev, state) -> (log-probabilities (B, V) of the next token, the new state)
    prev (B,): the tokens chosen at the previous step (<bos> at the start);
    finished (B,) bool: sentences that already emitted <eos> (shared.tokenizers.EOS_ID = 3).
    The next token of each sentence is its most probable one; a finished sentence gets <pad>
    (shared.tokenizers.PAD_ID = 0) instead. Returns (next tokens (B,), the new state, finished (B,)
    updated: also True where the next token is <eos>).
    """
    raise NotImplementedError
