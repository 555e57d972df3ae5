"""A GPT (decoder-only Transformer) written out, with GPT-2's parameter names.

    idx (B, T) -> token embedding wte + position embedding wpe
               -> n_layer x Block:  x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))      (pre-LN)
               -> ln_f -> lm_head (tied to wte) -> logits (B, T, vocab)

Names follow OpenAI/Hugging Face GPT-2 (`transformer.h.0.attn.c_attn.weight`, ...), so GPT-2 weights
load by copying tensors (see hf.py). The teaching path computes attention by hand; the default fast
path calls `F.scaled_dot_product_attention` (flash attention on GPUs); a test checks they agree.
Options from later models sit behind flags: RoPE positions, RMSNorm, SwiGLU MLP.
A KV cache makes generation cost O(T) per new token instead of O(T^2).

`Parts` holds the functions a learner writes in yours.py (`python -m shared.check stage5`): the
written-out attention, the cache update, the initialisation, and the two sampling filters (whose
reference is in shared/sampling.py, as stage 2 samples with them too). The reference is the default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from shared import sampling
from shared.cli import derived
from stage5_gpt.chunked_loss import chunked_lm_loss


@dataclass(frozen=True)
class GPTConfig:
    """The model's shape. The defaults are GPT-2 small (124M); stage 5's presets choose smaller ones.
    The training config inherits these fields, so each is also a flag (`--n_layer 6`)."""

    vocab_size: int = derived(50257, "set from the tokenizer")
    block_size: int = field(default=1024, metadata={"help": "context length in tokens"})
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = field(default=True, metadata={"help": "biases in linear layers and norms (GPT-2 has them)"})
    attention: Literal["sdpa", "manual"] = field(
        default="sdpa", metadata={"help": "sdpa: F.scaled_dot_product_attention (fast); manual: written out"})
    lm_loss: Literal["full", "chunked"] = field(default="full", metadata={
        "help": "full: all logits, then cross-entropy (written out); chunked: head and loss 256 positions at a "
                "time, the logits never whole (chunked_loss.py: faster on CPUs, less memory)"})
    position: Literal["learned", "rope"] = "learned"
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    mlp: Literal["gelu", "swiglu"] = "gelu"
    gelu: Literal["tanh", "exact"] = field(
        default="tanh", metadata={"help": "GELU form: tanh approximation (GPT-2's) or exact erf (faster on CPUs)"})


class RMSNorm(nn.Module):
    """x / rms(x) * g: LayerNorm without the mean subtraction and bias (LLaMA)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = x.float().pow(2).mean(-1, keepdim=True).add(self.eps).rsqrt()
        return (x.float() * rms).type_as(x) * self.weight


def make_norm(cfg: GPTConfig) -> nn.Module:
    return RMSNorm(cfg.n_embd) if cfg.norm == "rmsnorm" else nn.LayerNorm(cfg.n_embd, bias=cfg.bias)


def rope_cos_sin(head_dim: int, positions: torch.Tensor, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary embedding angles pos * base^(-2i/d) for each pair of channels. positions: (T,)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim)
    angles = positions.float()[:, None] * inv_freq[None, :]  # (T, hd/2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each channel pair (x1, x2) of q or k by its position's angle. x: (B, nh, T, hd)."""
    x1, x2 = x.float()[..., 0::2], x.float()[..., 1::2]  # (B, nh, T, hd/2)
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, nh, T, hd/2, 2)
    return rotated.flatten(-2).type_as(x)


def causal_mask(T: int, S: int, device: torch.device) -> torch.Tensor:
    """(T, S) True where query i, at absolute position S - T + i, may see key j: j <= S - T + i."""
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


def kv_cache_update(past: tuple[torch.Tensor, torch.Tensor] | None, k: torch.Tensor, v: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The keys and values of every token so far: the cached ones (B, nh, P, hd) followed by the new
    ones (B, nh, T, hd) along the time axis -> (B, nh, P + T, hd) each. No cache yet: just k, v."""
    if past is None:
        return k, v
    return torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)


class KVCache:
    """Keys and values of the tokens seen so far, one (k, v) pair per layer, each (B, nh, T, hd);
    each attention layer appends its new ones with kv_cache_update."""

    def __init__(self, n_layer: int):
        self.layers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layer

    @property
    def length(self) -> int:
        return 0 if self.layers[0] is None else self.layers[0][0].size(2)


def causal_self_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / sqrt(hd) + causal mask) v, written out. q (B, nh, T, hd) are the last T of the
    S positions of k and v (B, nh, S, hd) -> the output (B, nh, T, hd) and the weights (B, nh, T, S)."""
    T, S = q.size(2), k.size(2)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))  # (B, nh, T, S)
    scores = scores.masked_fill(~causal_mask(T, S, q.device), float("-inf"))
    weights = torch.softmax(scores.float(), dim=-1).type_as(q)  # (B, nh, T, S)
    return weights @ v, weights  # (B, nh, T, hd)


def fused_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float) -> torch.Tensor:
    """The same computation in one kernel (flash attention on GPUs): F.scaled_dot_product_attention."""
    T, S = q.size(2), k.size(2)
    if T == S:  # no cache, or a first chunk: the plain causal mask
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
    mask = None if T == 1 else causal_mask(T, S, q.device)  # one new token may see every key
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig, layer: int, parts: Parts | None = None):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0, "n_embd must be divisible by n_head"
        self.cfg, self.layer, self.parts = cfg, layer, parts or Parts()
        self.n_head, self.head_dim = cfg.n_head, cfg.n_embd // cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, rope: tuple | None = None, cache: KVCache | None = None,
                attention_maps: list | None = None) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C). With a cache, k and v of earlier tokens come from it. Given a list
        in attention_maps, the written-out path runs and appends its weights (B, nh, T, S) to it."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        v = v.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:  # the earlier tokens' keys and values, then these
            cache.layers[self.layer] = self.parts.kv_cache_update(cache.layers[self.layer], k, v)
            k, v = cache.layers[self.layer]  # (B, nh, S, hd), S = past + T
        if self.cfg.attention == "manual" or attention_maps is not None:
            y, weights = self.parts.causal_self_attention(q, k, v)  # (B, nh, T, hd)
            if self.training and self.cfg.dropout > 0:
                y = self.attn_dropout(weights) @ v  # attention dropout: some weights zeroed, the rest scaled up
            if attention_maps is not None:
                attention_maps.append(weights.detach())
        else:
            y = fused_attention(q, k, v, self.cfg.dropout if self.training else 0.0)  # (B, nh, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: GELU(x W1) W2 (GPT-2), or SwiGLU (silu(x Wg) * x Wu) W2 (LLaMA)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.swiglu, self.gelu = cfg.mlp == "swiglu", cfg.gelu
        # SwiGLU has three matrices; 2/3 of the width keeps the parameter count of the GELU MLP.
        hidden = 4 * cfg.n_embd if not self.swiglu else int(8 * cfg.n_embd / 3)
        self.c_fc = nn.Linear(cfg.n_embd, hidden * (2 if self.swiglu else 1), bias=cfg.bias)
        self.c_proj = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)  # (B, T, 4C) or (B, T, 2H)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up  # (B, T, H)
        else:
            h = F.gelu(h, approximate="tanh" if self.gelu == "tanh" else "none")
        return self.dropout(self.c_proj(h))  # (B, T, C)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig, layer: int, parts: Parts | None = None):
        super().__init__()
        self.ln_1 = make_norm(cfg)
        self.attn = CausalSelfAttention(cfg, layer, parts)
        self.ln_2 = make_norm(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, rope: tuple | None = None, cache: KVCache | None = None,
                attention_maps: list | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), rope, cache, attention_maps)  # (B, T, C)
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


def init_gpt2(model: GPT) -> None:
    """GPT-2's initialisation: every Linear and Embedding weight ~ N(0, 0.02²), biases 0 (norms keep
    gain 1), and the projections that write into the residual stream (c_proj) ~ N(0, (0.02 / sqrt(2 L))²),
    L layers, so the stream's variance does not grow with depth."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * model.cfg.n_layer))


@dataclass(frozen=True)
class Parts:
    """The functions the model is built from: `Parts()` is the reference, `Parts(**yours)` puts the
    learner's (from yours.py, through --yours) on top. The attention layers call causal_self_attention
    (on the written-out path, --attention manual) and kv_cache_update; the GPT initialises itself with
    init_gpt2 and samples (`generate`) with the two filters."""

    causal_self_attention: Callable[..., tuple[torch.Tensor, torch.Tensor]] = causal_self_attention
    kv_cache_update: Callable[..., tuple[torch.Tensor, torch.Tensor]] = kv_cache_update
    top_k_filter: Callable[[torch.Tensor, int], torch.Tensor] = sampling.top_k_filter
    top_p_filter: Callable[[torch.Tensor, float], torch.Tensor] = sampling.top_p_filter
    init_gpt2: Callable[[nn.Module], None] = init_gpt2


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig, parts: Parts | None = None):
        super().__init__()
        self.cfg, self.parts = cfg, parts or Parts()
        modules = dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
            drop=nn.Dropout(cfg.dropout),
            h=nn.ModuleList(Block(cfg, i, self.parts) for i in range(cfg.n_layer)),
            ln_f=make_norm(cfg),
        )
        if cfg.position == "learned":
            modules["wpe"] = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.transformer = nn.ModuleDict(modules)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying: one matrix reads and writes tokens
        self.parts.init_gpt2(self)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameters; position embeddings are left out by default, as in the scaling-law papers."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and "wpe" in self.transformer:
            n -= self.transformer.wpe.weight.numel()
        return n

    def flops_per_token(self, context: int) -> int:
        """Training FLOPs per token (forward + backward), as PaLM's appendix B counts them: 6 per weight
        (2 forward, 4 backward; the tied lm_head counted once) plus 12 L C T for the attention scores
        q kᵀ and weights·v over a context of T, the masked half included."""
        return 6 * self.num_params() + 12 * self.cfg.n_layer * self.cfg.n_embd * context

    def matmul_shapes(self, tokens: int) -> list[tuple[int, int, int]]:
        """The (m, k, n) of the weight matrix products a forward pass over `tokens` positions makes."""
        C, H = self.cfg.n_embd, self.transformer.h[0].mlp.c_proj.in_features
        return [(tokens, C, 3 * C), (tokens, C, C), (tokens, C, self.transformer.h[0].mlp.c_fc.out_features),
                (tokens, H, C), (tokens, C, self.cfg.vocab_size)]

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) token ids -> logits (B, T, V), and the mean cross-entropy when targets are given
        (with --lm_loss chunked, the loss alone: the logits are never made whole, None is returned)."""
        hidden = self.features(idx, cache)  # (B, T, C)
        if targets is not None and self.cfg.lm_loss == "chunked":
            return None, chunked_lm_loss(hidden, self.lm_head.weight, targets)
        logits = self.lm_head(hidden)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    def features(self, idx: torch.Tensor, cache: KVCache | None = None,
                 attention_maps: list | None = None) -> torch.Tensor:
        """idx (B, T) -> the final hidden states (B, T, C), after ln_f: what lm_head (or a classifier) reads.
        attention_maps: a list to receive each layer's attention weights (B, nh, T, S)."""
        B, T = idx.shape
        past = cache.length if cache is not None else 0
        if past + T > self.cfg.block_size:
            raise ValueError(f"sequence of {past + T} tokens is longer than the context ({self.cfg.block_size})")
        positions = torch.arange(past, past + T, device=idx.device)  # (T,)
        x = self.transformer.wte(idx)  # (B, T, C)
        rope = None
        if self.cfg.position == "learned":
            x = x + self.transformer.wpe(positions)  # (B, T, C) + (T, C)
        else:
            rope = rope_cos_sin(self.cfg.n_embd // self.cfg.n_head, positions)
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x, rope, cache, attention_maps)  # (B, T, C)
        return self.transformer.ln_f(x)  # (B, T, C)

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's attention weights for idx (B, T): a list of n_layer tensors (B, nh, T, T)."""
        maps: list[torch.Tensor] = []
        self.features(idx, attention_maps=maps)
        return maps

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, generator: torch.Generator | None = None,
                 kv_cache: bool = True) -> Iterator[torch.Tensor]:
        """Yield (B, 1) new token ids one at a time, continuing idx (B, T).

        Without the cache every step re-reads the last block_size tokens (O(T^2) work per token).
        With it, each step feeds only the newest token. When the context is full the window slides:
        the cache is rebuilt from the last half of the context, since the positions have changed.
        """
        block = self.cfg.block_size
        cache = None
        for _ in range(max_new_tokens):
            if not kv_cache:
                logits, _ = self(idx[:, -block:])
            elif cache is None or cache.length >= block:
                keep = block if cache is None else max(1, block // 2)
                cache = KVCache(self.cfg.n_layer)
                logits, _ = self(idx[:, -keep:], cache=cache)
            else:
                logits, _ = self(idx[:, -1:], cache=cache)  # (B, 1, V)
            next_id = sampling.sample_next(logits[:, -1, :], temperature, top_k, top_p, generator,
                                           self.parts.top_k_filter, self.parts.top_p_filter)  # (B, 1)
            idx = torch.cat([idx, next_id], dim=1)
            yield next_id
