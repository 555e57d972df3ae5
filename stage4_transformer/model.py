"""The Transformer of "Attention Is All You Need" (Vaswani et al. 2017), encoder-decoder, written out.

    src ids (B, S) -> embed * sqrt(d) + positions -> N x [self-attention, feed-forward] -> memory (B, S, d)
    tgt ids (B, T) -> embed * sqrt(d) + positions -> N x [causal self-attention, cross-attention to
                      memory, feed-forward] -> Linear (tied to the target embedding) -> logits (B, T, V)

Read from the top: attention and positions (functions), `Parts` (the functions a learner writes in
yours.py), multi-head attention, the two layers, the `Encoder`, the `Transformer` (the encoder plus a
decoder: training, then decoding one token at a time, then attention maps), and `EncoderClassifier`
(the same encoder plus a linear head: stage 4's text classifier).

Each sub-layer is wrapped in a residual connection and LayerNorm: post-LN as in the paper,
x = norm(x + sublayer(x)), or pre-LN (`norm_first`), x = x + sublayer(norm(x)), which trains
without warmup tricks and needs a final norm. Parameter names follow torch.nn.Transformer's layers
(self_attn, multihead_attn, linear1/2, norm1/2/3), so its weights load with a small renaming.
`--attention sdpa` (the default) runs each head's attention through F.scaled_dot_product_attention,
`--attention manual` through the written-out scaled_dot_product_attention below: the same equation
(tests/test_stage4.py checks their outputs and gradients agree).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
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
    attention: Literal["manual", "sdpa"] = field(default="sdpa", metadata={
        "help": "sdpa: F.scaled_dot_product_attention (fused kernels); manual: written out (your part under --yours)"})


# --------------------------------------------------------------------------- the parts: attention, positions, layers


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


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d))  -> (n, d)."""
    position = torch.arange(n, dtype=torch.float32)[:, None]  # (n, 1)
    frequency = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))  # (d/2,)
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(position * frequency)
    pe[:, 1::2] = torch.cos(position * frequency)
    return pe


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, L, d) -> (B, h, L, d/h): each head reads its own slice of the d channels."""
    return x.view(x.size(0), x.size(1), n_heads, x.size(2) // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, h, L, dh) -> (B, L, h * dh): the heads' outputs side by side."""
    return x.transpose(1, 2).reshape(x.size(0), x.size(2), -1)


def multi_head_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                         n_heads: int, attend: Callable[..., torch.Tensor]) -> torch.Tensor:
    """concat_h attend(Q_h, K_h, V_h): n_heads attentions side by side, each on d / n_heads channels.

    q (B, T, d), k and v (B, S, d): the projected queries, keys and values -> (B, T, d), before out_proj.
    attend(q, k, v, mask) attends in all heads at once, (B, h, T, dh) -> (B, h, T, dh): the written-out
    scaled_dot_product_attention or F.scaled_dot_product_attention, as --attention says.
    """
    heads = attend(split_heads(q, n_heads), split_heads(k, n_heads), split_heads(v, n_heads), mask)  # (B, h, T, dh)
    return merge_heads(heads)  # (B, T, d)


def encoder_layer(layer: EncoderLayer, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One pre-LN encoder layer: the forward of `layer` (its self), x (B, S, d) -> (B, S, d).

    x = x + dropout(self_attn(norm1(x))), then x = x + dropout(ffn(norm2(x))).
    """
    h = layer.norm1(x)
    x = x + layer.drop(layer.self_attn(h, h, mask))  # every token looks at every real source token
    return x + layer.drop(layer.ffn(layer.norm2(x)))  # then each token on its own


@dataclass(frozen=True)
class Parts:
    """The functions the model is built from: `Parts()` is the reference above, `Parts(**yours)` puts
    the learner's (yours.py, through --yours) on top. scaled_dot_product_attention runs under
    `--attention manual`, encoder_layer under `norm_first` (pre-LN): checks.YOURS_SETTINGS."""

    scaled_dot_product_attention: Callable[..., tuple[torch.Tensor, torch.Tensor]] = scaled_dot_product_attention
    sinusoidal_positions: Callable[[int, int], torch.Tensor] = sinusoidal_positions
    multi_head_attention: Callable[..., torch.Tensor] = multi_head_attention
    encoder_layer: Callable[..., torch.Tensor] = encoder_layer


# --------------------------------------------------------------------------- the blocks


class MultiHeadAttention(nn.Module):
    """The parameters of multi-head attention, the q/k/v/out projections (d -> d each), around
    parts.multi_head_attention.

    mask: bool, True where attention is allowed, broadcastable to (B, heads, T, S).
    cache (decoding one position at a time): this layer's keys and values of the earlier steps, a
    dict the call updates; `cross`: cross-attention, whose keys and values come from the memory.
    """

    def __init__(self, cfg: TransformerConfig, parts: Parts | None = None, cross: bool = False):
        super().__init__()
        assert cfg.d_model % cfg.n_heads == 0, "d_model must be divisible by n_heads"
        self.n_heads, self.dropout, self.cross = cfg.n_heads, cfg.dropout, cross
        self.parts = parts or Parts()
        # How each head attends, picked once: the same equation, written out or in PyTorch's fused kernels.
        self.attend = self.fast_attend if cfg.attention == "sdpa" else self.written_out_attend
        self.q_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.k_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.v_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, query: torch.Tensor, key_value: torch.Tensor, mask: torch.Tensor | None,
                cache: dict | None = None) -> torch.Tensor:
        """query (B, T, d) attends over key_value (B, S, d) -> (B, T, d)."""
        q = self.q_proj(query)  # (B, T, d)
        k, v = self.keys_values(key_value, cache)  # (B, S, d) each
        return self.out_proj(self.parts.multi_head_attention(q, k, v, mask, self.n_heads, self.attend))  # (B, T, d)

    def written_out_attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           mask: torch.Tensor | None) -> torch.Tensor:
        """q (B, h, T, dh) over k, v (B, h, S, dh) -> (B, h, T, dh) with parts.scaled_dot_product_attention,
        and dropout on the weights while training."""
        out, weights = self.parts.scaled_dot_product_attention(q, k, v, mask)  # (B, h, T, dh), (B, h, T, S)
        if self.training and self.dropout > 0:
            out = F.dropout(weights, self.dropout) @ v  # (B, h, T, dh)
        return out

    def fast_attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: torch.Tensor | None) -> torch.Tensor:
        """The same through F.scaled_dot_product_attention: one fused kernel (flash attention on GPUs)."""
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)

    def keys_values(self, key_value: torch.Tensor, cache: dict | None) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V (B, S, d) of key_value, and while decoding, of the earlier steps: self-attention appends
        this step's position to the cache; cross-attention's memory is the same at every step, projected
        at the first one."""
        if cache is None:  # training, or every position at once
            return self.k_proj(key_value), self.v_proj(key_value)
        if self.cross and cache:
            return cache["k"], cache["v"]
        k, v = self.k_proj(key_value), self.v_proj(key_value)  # (B, T, d): this step's positions
        if cache:  # the earlier steps' positions first
            k, v = torch.cat([cache["k"], k], dim=1), torch.cat([cache["v"], v], dim=1)  # (B, S, d)
        cache["k"], cache["v"] = k, v
        return k, v

    def weights(self, query: torch.Tensor, key_value: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Each head's attention weights (B, h, T, S), written out: what the attention plots show."""
        q, k, v = (split_heads(proj(x), self.n_heads)
                   for proj, x in [(self.q_proj, query), (self.k_proj, key_value), (self.v_proj, key_value)])
        return self.parts.scaled_dot_product_attention(q, k, v, mask)[1]


class EncoderLayer(nn.Module):
    """Self-attention (every token looks at every real token), then a position-wise feed-forward."""

    def __init__(self, cfg: TransformerConfig, parts: Parts | None = None):
        super().__init__()
        self.norm_first, self.parts = cfg.norm_first, parts or Parts()
        self.self_attn = MultiHeadAttention(cfg, self.parts)
        self.linear1, self.linear2 = nn.Linear(cfg.d_model, cfg.d_ff), nn.Linear(cfg.d_ff, cfg.d_model)
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.drop(F.relu(self.linear1(x))))  # position-wise: each token on its own

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, S, d), mask (B, 1, 1, S) True at real tokens -> (B, S, d)."""
        if self.norm_first:
            return self.parts.encoder_layer(self, x, mask)
        x = self.norm1(x + self.drop(self.self_attn(x, x, mask)))  # post-LN, as in the paper
        return self.norm2(x + self.drop(self.ffn(x)))


class DecoderLayer(nn.Module):
    """Causal self-attention over the target so far, cross-attention to the memory, the feed-forward."""

    def __init__(self, cfg: TransformerConfig, parts: Parts | None = None):
        super().__init__()
        self.norm_first = cfg.norm_first
        # Built in the encoder layer's order, then cross-attention: the random initial weights follow the
        # order modules are built in, so a seed gives the runs it always gave.
        self.self_attn = MultiHeadAttention(cfg, parts)
        self.linear1, self.linear2 = nn.Linear(cfg.d_model, cfg.d_ff), nn.Linear(cfg.d_ff, cfg.d_model)
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.multihead_attn = MultiHeadAttention(cfg, parts, cross=True)
        self.norm3 = nn.LayerNorm(cfg.d_model)

    def ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.drop(F.relu(self.linear1(x))))  # position-wise: each token on its own

    def forward(self, x: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor, memory_mask: torch.Tensor,
                cache: dict | None = None) -> torch.Tensor:
        """x (B, T, d), memory (B, S, d) -> (B, T, d). cache: {"self": {}, "cross": {}} while decoding."""
        self_cache, cross_cache = (cache["self"], cache["cross"]) if cache is not None else (None, None)
        if self.norm_first:
            h = self.norm1(x)
            x = x + self.drop(self.self_attn(h, h, self_mask, self_cache))
            h = self.norm2(x)
            x = x + self.drop(self.multihead_attn(h, memory, memory_mask, cross_cache))
            return x + self.drop(self.ffn(self.norm3(x)))
        x = self.norm1(x + self.drop(self.self_attn(x, x, self_mask, self_cache)))  # post-LN
        x = self.norm2(x + self.drop(self.multihead_attn(x, memory, memory_mask, cross_cache)))
        return self.norm3(x + self.drop(self.ffn(x)))


# --------------------------------------------------------------------------- the models


class Encoder(nn.Module):
    """Token ids (B, S) -> vectors (B, S, d) that have each read the whole text, and the padding mask.

    embed: token embedding * sqrt(d) (so it is not drowned by the positions) + positions, dropout;
    then the encoder layers; then, pre-LN, a final norm. The one encoder of stage 4: the Transformer
    is it plus a decoder, EncoderClassifier is it plus a linear head.
    `tgt_vocab`: an encoder-decoder's target table, which `embed` embeds like the source (the same
    positions and scale). It is built here, right after the source table, because the random initial
    weights follow the order modules are built in: a seed gives the runs it always gave.
    """

    def __init__(self, cfg: TransformerConfig, parts: Parts | None = None, tgt_vocab: int = 0):
        super().__init__()
        self.cfg, self.parts = cfg, parts or Parts()
        self.src_embed = nn.Embedding(cfg.src_vocab, cfg.d_model, padding_idx=0)
        if tgt_vocab:
            self.tgt_embed = nn.Embedding(tgt_vocab, cfg.d_model, padding_idx=0)
        if cfg.positions == "learned":
            self.pos_embed = nn.Embedding(cfg.max_positions, cfg.d_model)
        else:
            pe = self.parts.sinusoidal_positions(cfg.max_positions, cfg.d_model)  # (max_positions, d)
            self.register_buffer("pe", pe, persistent=False)
        self.encoder_layers = nn.ModuleList(EncoderLayer(cfg, self.parts) for _ in range(cfg.n_enc_layers))
        # Pre-LN leaves the residual stream unnormalised: a final norm after the stack.
        self.encoder_norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self.drop = nn.Dropout(cfg.dropout)

    def init_weights(self) -> None:
        """Xavier-uniform for every matrix (embeddings and projections); biases and norms keep PyTorch's."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def embed(self, table: nn.Embedding, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        """ids (B, T) at positions start .. start + T - 1 -> table(ids) * sqrt(d) + positions, dropout (B, T, d)."""
        positions = torch.arange(start, start + ids.size(1), device=ids.device)
        pos = self.pos_embed(positions) if self.cfg.positions == "learned" else self.pe[positions]  # (T, d)
        return self.drop(table(ids) * math.sqrt(self.cfg.d_model) + pos)  # (B, T, d)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) -> memory (B, S, d) and the padding mask (B, 1, 1, S), True at real tokens."""
        mask = (src != 0)[:, None, None, :]  # (B, 1, 1, S)
        x = self.embed(self.src_embed, src)  # (B, S, d)
        for layer in self.encoder_layers:
            x = layer(x, mask)
        return self.encoder_norm(x), mask


class Transformer(Encoder):
    """The encoder-decoder: the Encoder reads the source once; the decoder layers write the target, each
    position reading the target before it and the whole memory; a linear layer gives the next token."""

    def __init__(self, cfg: TransformerConfig, parts: Parts | None = None):
        super().__init__(cfg, parts, tgt_vocab=cfg.tgt_vocab)
        self.decoder_layers = nn.ModuleList(DecoderLayer(cfg, self.parts) for _ in range(cfg.n_dec_layers))
        # The encoder's final norm moved after the decoder layers, where it has always been: the order of
        # the parameters (an optimizer state's in a checkpoint, the gradient norm's sum) stays the same.
        encoder_norm = self.encoder_norm
        del self.encoder_norm
        self.encoder_norm = encoder_norm
        self.decoder_norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self.generator = nn.Linear(cfg.d_model, cfg.tgt_vocab)
        self.init_weights()
        if cfg.tie_embeddings:
            self.generator.weight = self.tgt_embed.weight

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor,
               caches: list[dict] | None = None, start: int = 0) -> torch.Tensor:
        """tgt (B, T) -> logits (B, T, V). Position t sees target positions <= t and every source token.
        While decoding, `caches` holds each layer's keys and values of the `start` positions before."""
        t = tgt.size(1)
        # Causal mask over the T new positions and the `start` cached ones before them.
        causal = torch.ones(t, start + t, dtype=torch.bool, device=tgt.device).tril(diagonal=start)  # (T, start+T)
        x = self.embed(self.tgt_embed, tgt, start)  # (B, T, d)
        for i, layer in enumerate(self.decoder_layers):
            x = layer(x, memory, causal, memory_mask, caches[i] if caches is not None else None)
        return self.generator(self.decoder_norm(x))  # (B, T, V)

    # The translation code (shared/translation_run.py, shared/beam.py) calls every translation model
    # with the source lengths too: stage 3 packs its GRU by them; here padding is read from the ids.

    def forward(self, src: torch.Tensor, src_len: torch.Tensor | None, tgt: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (B, T-1, V) for tgt[:, 1:] given tgt[:, :-1], all positions at once."""
        memory, memory_mask = self.encode(src)
        return self.decode(tgt[:, :-1], memory, memory_mask)

    # ------------------------------------------------------------------ incremental decoding (shared.beam)

    def decode_start(self, src: torch.Tensor, src_len: torch.Tensor | None) -> dict:
        """Encode once; each decoder layer's keys and values will be kept in its cache."""
        memory, memory_mask = self.encode(src)
        caches = [{"self": {}, "cross": {}} for _ in self.decoder_layers]
        return {"memory": memory, "mask": memory_mask, "caches": caches, "t": 0}

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

    # ------------------------------------------------------------------ attention maps (translate --show_attention)

    @torch.no_grad()
    def attention_map(self, src: torch.Tensor, src_len: torch.Tensor | None, tgt: torch.Tensor,
                      layer: int = -1) -> torch.Tensor:
        """Cross-attention (T-1, S) of one sentence pair in a decoder layer, averaged over heads."""
        return self.attention_weights(src, tgt)["cross"][layer][0].mean(0)

    @torch.no_grad()
    def attention_weights(self, src: torch.Tensor, tgt: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Every layer's attention weights (B, heads, T, S) in one teacher-forced pass: encoder self,
        decoder self, decoder cross. A hook on each attention module hands the inputs it is called with
        to its `weights`, so the maps are the pass's own, whatever code calls the modules."""
        groups = {"encoder": [layer.self_attn for layer in self.encoder_layers],
                  "decoder": [layer.self_attn for layer in self.decoder_layers],
                  "cross": [layer.multihead_attn for layer in self.decoder_layers]}
        found: dict[MultiHeadAttention, torch.Tensor] = {}

        def keep(module: MultiHeadAttention, args: tuple, kwargs: dict, output: torch.Tensor) -> None:
            call = inspect.signature(module.forward).bind(*args, **kwargs).arguments
            found[module] = module.weights(call["query"], call["key_value"], call["mask"])

        hooks = [m.register_forward_hook(keep, with_kwargs=True) for group in groups.values() for m in group]
        try:
            self(src, None, tgt)
        finally:
            for hook in hooks:
                hook.remove()
        return {name: [found[m] for m in group] for name, group in groups.items()}


class EncoderClassifier(Encoder):
    """The Transformer's encoder reading a whole text, then a linear classifier on one summary vector.

    tokens (B, T), right-padded -> Encoder.encode -> pool -> Linear -> logits (B, classes).
    `pool`: "mean" or "max" over the real tokens, or "first": the output at position 0, where the texts start with
    <bos>; every layer lets that position attend to all the words, so it learns to summarise them (BERT's
    [CLS]). Uses `cfg.src_vocab`; the decoder's fields are unused.
    """

    def __init__(self, cfg: TransformerConfig, num_classes: int, pool: str = "mean", parts: Parts | None = None):
        super().__init__(cfg, parts)
        self.pool = pool
        self.head = nn.Linear(cfg.d_model, num_classes)
        self.init_weights()

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) -> logits (B, classes). Padding is masked out of every attention and of the pooling."""
        idx = idx[:, : self.cfg.max_positions]  # the position table's length is the longest text
        x, mask = self.encode(idx)  # (B, T, d), (B, 1, 1, T)
        real = mask[:, 0, 0]  # (B, T)
        if self.pool == "first":
            pooled = x[:, 0]  # (B, d)
        elif self.pool == "max":
            pooled = x.masked_fill(~real[..., None], float("-inf")).amax(1).nan_to_num(neginf=0.0)  # (B, d)
        else:
            pooled = (x * real[..., None]).sum(1) / real.sum(1, keepdim=True).clamp_min(1)  # (B, d)
        return self.head(self.drop(pooled))  # (B, classes)
