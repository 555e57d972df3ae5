"""An RNN encoder-decoder with attention (Bahdanau, Cho & Bengio 2015), written to be read.

    source ids (B, S) -> embedding -> bidirectional GRU -> encoder states h_1..h_S (B, S, 2H)
                                                  final states -> tanh(Linear) -> decoder state s_0 (B, D)
    each target step t:
        attention:  e_j = score(s_{t-1}, h_j);  a = softmax(e) over real (unpadded) j;  c_t = sum_j a_j h_j
        decoder:    s_t = GRUCell([embed(y_{t-1}); c_t], s_{t-1})
        output:     logits_t = Linear([s_t; c_t; embed(y_{t-1})])   -> next-token distribution

`--attention_type` picks score(): bahdanau (additive: vᵀ tanh(W s + U h)), luong (multiplicative,
Luong's "general": sᵀ W h), or none (c_t is the same fixed summary of the source at every step:
the encoder-decoder of Cho et al. 2014, whose one vector is the bottleneck attention removes).

`Parts` holds the functions a learner writes in yours.py (`python -m shared.check stage3`): the two
scores' attention, which the model calls, and `greedy_step`, which greedy decoding calls
(shared/beam.py, where stage 4 decodes with it too). The reference is the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from shared import beam
from shared.cli import derived

ATTENTION_TYPES = ("bahdanau", "luong", "none")


@dataclass(frozen=True)
class Seq2SeqConfig:
    """The model's shape. The training config inherits these fields, so each is also a flag."""

    src_vocab: int = derived(0, "set from the source vocabulary")
    tgt_vocab: int = derived(0, "set from the target vocabulary")
    embed_dim: int = 256
    enc_hidden: int = field(default=512, metadata={"help": "GRU units per encoder direction"})
    dec_hidden: int = 512
    attn_dim: int = field(default=512, metadata={"help": "hidden size of the additive attention's MLP"})
    dropout: float = 0.3
    attention_type: Literal["bahdanau", "luong", "none"] = field(
        default="bahdanau", metadata={"help": "additive (Bahdanau), multiplicative (Luong), or none (a fixed summary)"})


def additive_attention(s: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                       W: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bahdanau: e_j = vᵀ tanh(W s + k_j), with k_j = U h_j + b computed once per sentence (keys).
    s (B, D), keys (B, S, A), values h_j (B, S, E), mask (B, S) True at real tokens, W (A, D), v (A,)
    -> context c = Σ_j a_j h_j (B, E) and the weights a = softmax(e) over real tokens (B, S)."""
    scores = torch.tanh((s @ W.t())[:, None] + keys) @ v  # (B, S)
    weights = F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)  # (B, S), 0 on padding
    return torch.bmm(weights[:, None], values).squeeze(1), weights  # (B, E), (B, S)


def multiplicative_attention(s: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                             mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Luong's general score: e_j = sᵀ W h_j = s · k_j, with k_j = W h_j computed once (keys).
    s (B, D), keys (B, S, D), values (B, S, E), mask (B, S) -> context (B, E), weights (B, S)."""
    scores = torch.bmm(keys, s[:, :, None]).squeeze(-1)  # (B, S)
    weights = F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)  # (B, S), 0 on padding
    return torch.bmm(weights[:, None], values).squeeze(1), weights  # (B, E), (B, S)


@dataclass(frozen=True)
class Parts:
    """The functions the model is built from: `Parts()` is the reference, `Parts(**yours)` puts the
    learner's (from yours.py, through --yours) on top. The attention modules call the attention of
    their score; greedy decoding (shared.beam.greedy_decode) takes greedy_step from here."""

    additive_attention: Callable[..., tuple[torch.Tensor, torch.Tensor]] = additive_attention
    multiplicative_attention: Callable[..., tuple[torch.Tensor, torch.Tensor]] = multiplicative_attention
    greedy_step: Callable[..., tuple] = beam.greedy_step


class AdditiveAttention(nn.Module):
    """The parameters of Bahdanau's score: W (for the decoder state), U (for the encoder states), v."""

    def __init__(self, dec_hidden: int, enc_dim: int, attn_dim: int, parts: Parts | None = None):
        super().__init__()
        self.parts = parts or Parts()
        self.W = nn.Linear(dec_hidden, attn_dim, bias=False)
        self.U = nn.Linear(enc_dim, attn_dim)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def keys(self, enc: torch.Tensor) -> torch.Tensor:
        return self.U(enc)  # (B, S, A): does not depend on the decoding step

    def forward(self, s, keys, values, mask):
        return self.parts.additive_attention(s, keys, values, mask, self.W.weight, self.v.weight[0])


class MultiplicativeAttention(nn.Module):
    """The parameter of Luong's general score: W, mapping encoder states to the decoder's width."""

    def __init__(self, dec_hidden: int, enc_dim: int, parts: Parts | None = None):
        super().__init__()
        self.parts = parts or Parts()
        self.W = nn.Linear(enc_dim, dec_hidden, bias=False)

    def keys(self, enc: torch.Tensor) -> torch.Tensor:
        return self.W(enc)  # (B, S, D)

    def forward(self, s, keys, values, mask):
        return self.parts.multiplicative_attention(s, keys, values, mask)


class Encoder(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.src_vocab, cfg.embed_dim, padding_idx=0)
        self.rnn = nn.GRU(cfg.embed_dim, cfg.enc_hidden, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * cfg.enc_hidden, cfg.dec_hidden)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S), src_len (B,) -> encoder states (B, S, 2H), summary (B, 2H)."""
        x = self.dropout(self.embed(src))  # (B, S, E)
        # Packing skips the padding: the backward GRU starts at each sentence's real last token.
        packed = pack_padded_sequence(x, src_len.cpu(), batch_first=True, enforce_sorted=False)
        out, h_n = self.rnn(packed)  # h_n (2, B, H): last forward state, last backward state
        enc, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))  # (B, S, 2H)
        return enc, torch.cat([h_n[0], h_n[1]], dim=-1)  # (B, S, 2H), (B, 2H)


@dataclass
class DecoderState:
    s: torch.Tensor  # (N, D) decoder hidden state
    enc: torch.Tensor  # (N, S, 2H) encoder states
    keys: torch.Tensor | None  # (N, S, A) attention keys, precomputed
    mask: torch.Tensor  # (N, S) True at real source tokens
    summary: torch.Tensor  # (N, 2H) the fixed context of attention_type none


class Seq2Seq(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig, parts: Parts | None = None):
        super().__init__()
        if cfg.attention_type not in ATTENTION_TYPES:
            raise ValueError(f"attention_type must be one of {ATTENTION_TYPES}")
        self.cfg, self.parts = cfg, parts or Parts()
        enc_dim = 2 * cfg.enc_hidden
        self.encoder = Encoder(cfg)
        self.attention = {"bahdanau": lambda: AdditiveAttention(cfg.dec_hidden, enc_dim, cfg.attn_dim, self.parts),
                          "luong": lambda: MultiplicativeAttention(cfg.dec_hidden, enc_dim, self.parts),
                          "none": lambda: None}[cfg.attention_type]()
        self.embed = nn.Embedding(cfg.tgt_vocab, cfg.embed_dim, padding_idx=0)
        self.cell = nn.GRUCell(cfg.embed_dim + enc_dim, cfg.dec_hidden)
        self.out = nn.Linear(cfg.dec_hidden + enc_dim + cfg.embed_dim, cfg.tgt_vocab)
        self.dropout = nn.Dropout(cfg.dropout)

    # ------------------------------------------------------------------ one step, and training

    def attend(self, state: DecoderState) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Context c (N, 2H) and attention weights (N, S), or the fixed summary and None."""
        if self.attention is None:
            return state.summary, None
        return self.attention(state.s, state.keys, state.enc, state.mask)  # (N, 2H), (N, S)

    def step(self, prev: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """prev (N,) last target tokens -> logits (N, V), next state, attention weights (N, S)."""
        emb = self.dropout(self.embed(prev))  # (N, E)
        context, weights = self.attend(state)  # (N, 2H)
        s = self.cell(torch.cat([emb, context], dim=-1), state.s)  # (N, D)
        logits = self.out(self.dropout(torch.cat([s, context, emb], dim=-1)))  # (N, V)
        return logits, DecoderState(s, state.enc, state.keys, state.mask, state.summary), weights

    def decode_start(self, src: torch.Tensor, src_len: torch.Tensor) -> DecoderState:
        enc, summary = self.encoder(src, src_len)  # (B, S, 2H), (B, 2H)
        s0 = torch.tanh(self.encoder.bridge(summary))  # (B, D)
        keys = self.attention.keys(enc) if self.attention is not None else None
        return DecoderState(s0, enc, keys, src != 0, summary)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor,
                teacher_forcing: float = 1.0) -> torch.Tensor:
        """Logits (B, T-1, V) for tgt[:, 1:] given tgt[:, :-1]. With teacher_forcing < 1, each step
        feeds the model's own previous guess instead of the true token with probability 1 - ratio."""
        state = self.decode_start(src, src_len)
        prev, logits = tgt[:, 0], []
        for t in range(1, tgt.size(1)):
            step_logits, state, _ = self.step(prev, state)  # (B, V)
            logits.append(step_logits)
            teacher = teacher_forcing >= 1 or torch.rand(()).item() < teacher_forcing
            prev = tgt[:, t] if teacher else step_logits.argmax(-1)
        return torch.stack(logits, dim=1)  # (B, T-1, V)

    # ------------------------------------------------------------------ the shared decoding interface

    def decode_step(self, prev: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        logits, state, _ = self.step(prev, state)
        return F.log_softmax(logits.float(), dim=-1), state  # (N, V)

    @staticmethod
    def reorder_state(state: DecoderState, index: torch.Tensor) -> DecoderState:
        return DecoderState(state.s[index], state.enc[index], None if state.keys is None else state.keys[index],
                            state.mask[index], state.summary[index])

    @torch.no_grad()
    def attention_map(self, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Attention weights (T-1, S) of one sentence pair (batch of 1) while reading tgt."""
        state = self.decode_start(src, src_len)
        rows = []
        for t in range(tgt.size(1) - 1):
            _, state, weights = self.step(tgt[:, t], state)
            rows.append(weights[0] if weights is not None else torch.zeros(src.size(1), device=src.device))
        return torch.stack(rows)
