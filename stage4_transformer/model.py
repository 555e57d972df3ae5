"""The Transformer of "Attention Is All You Need" (Vaswani et al. 2017), encoder-decoder, written out.

    src ids (B, S) -> embed * sqrt(d) + positions -> N x [self-attention, feed-forward] -> memory (B, S, d)
    tgt ids (B, T) -> embed * sqrt(d) + positions -> N x [causal self-attention, cross-attention to
                      memory, feed-forward] -> Linear (tied to the target embedding) -> logits (B, T, V)

Each sub-layer is wrapped in a residual connection and LayerNorm: post-LN as in the paper,
x = norm(x + sublayer(x)), or pre-LN (`norm_first`), x = x + sublayer(norm(x)), which trains
without warmup tricks and needs a final norm. Parameter names follow torch.nn.Transformer's layers
(self_attn, multihead_attn, linear1/2, norm1/2/3), so its weights load with a small renaming.
`attention="sdpa"` runs the same attention through F.scaled_dot_product_attention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from shared.cli import derived


@dataclass(frozen=True)
class TransformerConfig:
    """The model's shape. The training config inherits these fields, so each is also a flag."""

    src_vocab: int = derived(0, "set from the source vocabulary")
    tgt_vocab: int = derived(0, "set from the target vocabulary")
    d_model: int = 256
    n_heads: int = 8
    n_enc_layers: int = 3
    n_dec_layers: int = 3
    d_ff: int = field(default=512, metadata={"help": "hidden size of the position-wise feed-forward layer"})
    dropout: float = 0.1
    norm_first: bool = field(default=True, metadata={"help": "pre-LN (True) or the paper's post-LN (--no-norm_first)"})
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"
    max_positions: int = field(default=256, metadata={"help": "rows of the position table: the longest sentence"})
    tie_embeddings: bool = field(default=True, metadata={"help": "share the target embedding and output matrix"})
    attention: Literal["manual", "sdpa"] = field(
        default="sdpa", metadata={"help": "sdpa: F.scaled_dot_product_attention; manual: written out"})


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d))  -> (n, d)."""
    position = torch.arange(n, dtype=torch.float32)[:, None]  # (n, 1)
    frequency = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))  # (d/2,)
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(position * frequency)
    pe[:, 1::2] = torch.cos(position * frequency)
    return pe


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / sqrt(d_head)) v, with -inf where mask is False (padding, or the future).

    q (B, h, T, dh), k and v (B, h, S, dh), mask broadcastable to (B, h, T, S)
    -> out (B, h, T, dh), weights (B, h, T, S), each row of weights summing to 1.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, h, T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = F.softmax(scores, dim=-1)  # (B, h, T, S): over the keys
    return weights @ v, weights  # (B, h, T, dh)


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, L, d) -> (B, h, L, d/h): each head reads its own slice of the d channels."""
    return x.view(x.size(0), x.size(1), n_heads, x.size(2) // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, h, L, dh) -> (B, L, h * dh): the heads' outputs side by side."""
    return x.transpose(1, 2).reshape(x.size(0), x.size(2), -1)


def multi_head_attention(query: torch.Tensor, key_value: torch.Tensor, mask: torch.Tensor | None,
                         attn: MultiHeadAttention) -> torch.Tensor:
    """Project query (B, T, d) to Q and key_value (B, S, d) to K and V, attend in attn.n_heads heads,
    concatenate the heads and project: out_proj(concat_h softmax(Q_h K_hᵀ / sqrt(dh)) V_h) -> (B, T, d)."""
    q = split_heads(attn.q_proj(query), attn.n_heads)  # (B, h, T, dh)
    k = split_heads(attn.k_proj(key_value), attn.n_heads)  # (B, h, S, dh)
    v = split_heads(attn.v_proj(key_value), attn.n_heads)  # (B, h, S, dh)
    return attn.out_proj(merge_heads(attn.attend(q, k, v, mask)))  # (B, T, d)


class MultiHeadAttention(nn.Module):
    """The parameters of multi-head attention (q/k/v/out projections) and its two paths: written out
    (scaled_dot_product_attention) or F.scaled_dot_product_attention (sdpa).

    mask: bool, True where attention is allowed, broadcastable to (B, heads, T, S).
    cache: a dict that keeps this layer's keys/values between decoding steps (incremental decoding):
    for self-attention new keys/values are appended; for cross-attention they are computed once.
    Setting `record = True` keeps the last attention weights in `.weights` (for plots).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float, sdpa: bool = False):
        super().__init__()
        assert d_model % n_heads == 0, "d_model must be divisible by n_heads"
        self.n_heads, self.d_head, self.dropout, self.sdpa = n_heads, d_model // n_heads, dropout, sdpa
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.record, self.weights = False, None

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The attention of q (B, h, T, dh) over k, v (B, h, S, dh) -> (B, h, T, dh), with dropout on the weights."""
        p = self.dropout if self.training else 0.0
        if self.sdpa and not self.record:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        if self.record:
            self.weights = weights.detach()
        return F.dropout(weights, p, self.training) @ v if p > 0 else out

    def forward(self, query: torch.Tensor, key_value: torch.Tensor, mask: torch.Tensor | None,
                cache: dict | None = None, kind: str = "self") -> torch.Tensor:
        if cache is None:  # training, and decoding all positions at once
            return multi_head_attention(query, key_value, mask, self)
        # Incremental decoding: earlier positions' keys and values come from the cache.
        q = split_heads(self.q_proj(query), self.n_heads)  # (B, h, T, dh)
        if kind == "cross" and "k" in cache:
            k, v = cache["k"], cache["v"]  # the memory does not change while decoding
        else:
            k, v = split_heads(self.k_proj(key_value), self.n_heads), split_heads(self.v_proj(key_value), self.n_heads)
            if kind == "self" and "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)  # (B, h, S, dh)
            cache["k"], cache["v"] = k, v
        return self.out_proj(merge_heads(self.attend(q, k, v, mask)))  # (B, T, d)


def encoder_layer(x: torch.Tensor, mask: torch.Tensor, layer: EncoderLayer) -> torch.Tensor:
    """One pre-LN encoder layer, x (B, S, d) -> (B, S, d):
    x = x + dropout(self_attn(norm1(x))), then x = x + dropout(ffn(norm2(x)))."""
    h = layer.norm1(x)
    x = x + layer.drop(layer.self_attn(h, h, mask))  # every token looks at every real source token
    return x + layer.drop(layer.ffn(layer.norm2(x)))  # then each token on its own


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm_first = cfg.norm_first
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.dropout, cfg.attention == "sdpa")
        self.linear1, self.linear2 = nn.Linear(cfg.d_model, cfg.d_ff), nn.Linear(cfg.d_ff, cfg.d_model)
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.drop(F.relu(self.linear1(x))))  # position-wise: each token on its own

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            return encoder_layer(x, mask, self)
        x = self.norm1(x + self.drop(self.self_attn(x, x, mask)))  # post-LN, as in the paper
        return self.norm2(x + self.drop(self.ffn(x)))


class DecoderLayer(EncoderLayer):
    def __init__(self, cfg: TransformerConfig):
        super().__init__(cfg)
        self.multihead_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.dropout, cfg.attention == "sdpa")
        self.norm3 = nn.LayerNorm(cfg.d_model)

    def forward(self, x, memory, self_mask, memory_mask, cache: dict | None = None):
        self_cache = cache.setdefault("self", {}) if cache is not None else None
        cross_cache = cache.setdefault("cross", {}) if cache is not None else None
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.drop(self.self_attn(h, h, self_mask, self_cache, "self"))
            h = self.norm2(x)
            x = x + self.drop(self.multihead_attn(h, memory, memory_mask, cross_cache, "cross"))
            return x + self.drop(self.ffn(self.norm3(x)))
        x = self.norm1(x + self.drop(self.self_attn(x, x, self_mask, self_cache, "self")))
        x = self.norm2(x + self.drop(self.multihead_attn(x, memory, memory_mask, cross_cache, "cross")))
        return self.norm3(x + self.drop(self.ffn(x)))


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.src_embed = nn.Embedding(cfg.src_vocab, cfg.d_model, padding_idx=0)
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab, cfg.d_model, padding_idx=0)
        if cfg.positions == "learned":
            self.pos_embed = nn.Embedding(cfg.max_positions, cfg.d_model)
        else:
            self.register_buffer("pe", sinusoidal_positions(cfg.max_positions, cfg.d_model), persistent=False)
        self.encoder_layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_enc_layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_dec_layers))
        # Pre-LN leaves the residual stream unnormalised: a final norm after each stack.
        self.encoder_norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self.generator = nn.Linear(cfg.d_model, cfg.tgt_vocab)
        self.drop = nn.Dropout(cfg.dropout)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        if cfg.tie_embeddings:
            self.generator.weight = self.tgt_embed.weight

    def embed(self, table: nn.Embedding, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Token embedding * sqrt(d) (so it is not drowned by the positions) + position, dropout."""
        positions = torch.arange(start, start + ids.size(1), device=ids.device)
        pos = self.pos_embed(positions) if self.cfg.positions == "learned" else self.pe[positions]  # (T, d)
        return self.drop(table(ids) * math.sqrt(self.cfg.d_model) + pos)  # (B, T, d)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) -> memory (B, S, d) and the padding mask (B, 1, 1, S), True at real tokens."""
        mask = (src != 0)[:, None, None, :]  # (B, 1, 1, S)
        x = self.embed(self.src_embed, src)
        for layer in self.encoder_layers:
            x = layer(x, mask)
        return self.encoder_norm(x), mask

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor,
               caches: list[dict] | None = None, start: int = 0) -> torch.Tensor:
        """tgt (B, T) -> logits (B, T, V). Position t sees target positions <= t and every source token."""
        t = tgt.size(1)
        # Causal mask over the T new positions and the `start` cached ones before them.
        causal = torch.ones(t, start + t, dtype=torch.bool, device=tgt.device).tril(diagonal=start)  # (T, start+T)
        x = self.embed(self.tgt_embed, tgt, start)
        for i, layer in enumerate(self.decoder_layers):
            x = layer(x, memory, causal, memory_mask, caches[i] if caches is not None else None)
        return self.generator(self.decoder_norm(x))  # (B, T, V)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (B, T-1, V) for tgt[:, 1:] given tgt[:, :-1], all positions at once."""
        memory, memory_mask = self.encode(src)
        return self.decode(tgt[:, :-1], memory, memory_mask)

    # ------------------------------------------------------------------ incremental decoding (shared.beam)

    def decode_start(self, src: torch.Tensor, src_len: torch.Tensor) -> dict:
        memory, memory_mask = self.encode(src)
        return {"memory": memory, "mask": memory_mask, "caches": [{} for _ in self.decoder_layers], "t": 0}

    def decode_step(self, prev: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One new target position; earlier positions' keys/values come from the caches."""
        logits = self.decode(prev[:, None], state["memory"], state["mask"], state["caches"], state["t"])  # (N, 1, V)
        state["t"] += 1
        return F.log_softmax(logits[:, -1].float(), dim=-1), state  # (N, V)

    @staticmethod
    def reorder_state(state: dict, index: torch.Tensor) -> dict:
        caches = [{kind: {name: tensor[index] for name, tensor in kv.items()} for kind, kv in cache.items()}
                  for cache in state["caches"]]
        return {"memory": state["memory"][index], "mask": state["mask"][index], "caches": caches, "t": state["t"]}

    @torch.no_grad()
    def attention_map(self, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor,
                      layer: int = -1) -> torch.Tensor:
        """Cross-attention (T-1, S) of one sentence pair in a decoder layer, averaged over heads."""
        return self.attention_weights(src, tgt)["cross"][layer][0].mean(0)

    @torch.no_grad()
    def attention_weights(self, src: torch.Tensor, tgt: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Every layer's attention weights (B, heads, T, S): encoder self, decoder self, decoder cross."""
        groups = {"encoder": [layer.self_attn for layer in self.encoder_layers],
                  "decoder": [layer.self_attn for layer in self.decoder_layers],
                  "cross": [layer.multihead_attn for layer in self.decoder_layers]}
        modules = [m for group in groups.values() for m in group]
        for m in modules:
            m.record = True
        try:
            self(src, (src != 0).sum(1), tgt)
        finally:
            for m in modules:
                m.record = False
        return {name: [m.weights for m in group] for name, group in groups.items()}


# --------------------------------------------------------------------------- the encoder alone, classifying


class EncoderClassifier(nn.Module):
    """The Transformer's encoder reading a whole text, then a linear classifier on one summary vector.

    tokens (B, T), right-padded -> embedding * sqrt(d) + positions -> encoder layers -> final norm -> pool
    `pool`: "mean" or "max" over the real tokens, or "first": the output at position 0, where the texts start with
    <bos>; every layer lets that position attend to all the words, so it learns to summarise them (BERT's
    [CLS]). Uses `cfg.src_vocab`; the decoder's fields are unused.
    """

    def __init__(self, cfg: TransformerConfig, num_classes: int, pool: str = "mean"):
        super().__init__()
        self.cfg, self.pool = cfg, pool
        self.src_embed = nn.Embedding(cfg.src_vocab, cfg.d_model, padding_idx=0)
        if cfg.positions == "learned":
            self.pos_embed = nn.Embedding(cfg.max_positions, cfg.d_model)
        else:
            self.register_buffer("pe", sinusoidal_positions(cfg.max_positions, cfg.d_model), persistent=False)
        self.encoder_layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_enc_layers))
        self.encoder_norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.d_model, num_classes)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    embed = Transformer.embed  # the same embedding + positions as the translation model

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) -> logits (B, classes). Padding is masked out of every attention and of the pooling."""
        idx = idx[:, : self.cfg.max_positions]  # the position table's length is the longest text
        real = idx != 0  # (B, T)
        x = self.embed(self.src_embed, idx)  # (B, T, d)
        for layer in self.encoder_layers:
            x = layer(x, real[:, None, None, :])
        x = self.encoder_norm(x)  # (B, T, d)
        if self.pool == "first":
            pooled = x[:, 0]  # (B, d)
        elif self.pool == "max":
            pooled = x.masked_fill(~real[..., None], float("-inf")).amax(1).nan_to_num(neginf=0.0)  # (B, d)
        else:
            pooled = (x * real[..., None]).sum(1) / real.sum(1, keepdim=True).clamp_min(1)  # (B, d)
        return self.head(self.drop(pooled))  # (B, classes)
