"""Choosing the next token from a language model's logits: temperature, top-k and top-p (nucleus).

Used by stage 2 (RNN/LSTM generation) and stage 5 (GPT generation).

    logits / temperature        < 1 sharpens the distribution, > 1 flattens it, 0 means greedy
    top-k                       keep the k most likely tokens
    top-p                       keep the smallest set of most likely tokens whose probability >= p
    softmax, then sample        the tokens removed above get probability exactly 0

The two filters below are the reference; the sampling functions take them as arguments, so stage
5's GPT samples with the ones it was built with (its `Parts`: the learner's under --yours).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from shared.cli import check


def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    check(temperature >= 0, "--temperature must be >= 0 (0 = greedy)")
    check(top_k >= 0, "--top_k must be >= 0 (0 = off)")
    check(0 < top_p <= 1, "--top_p must be in (0, 1] (1 = off)")


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row, set the others to -inf. logits (B, V) -> (B, V)."""
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1): the k-th largest
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability adds up to >= p (the nucleus),
    set the others to -inf. logits (B, V) -> (B, V)."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    probs = torch.softmax(sorted_logits, dim=-1)
    # Drop a token when the tokens ranked above it already hold >= p of the mass: the token that
    # crosses p stays, and so does the most likely one.
    mass_before = torch.cumsum(probs, dim=-1) - probs  # (B, V)
    drop = torch.zeros_like(mass_before, dtype=torch.bool).scatter(-1, order, mass_before >= p)
    return logits.masked_fill(drop, float("-inf"))


Filter = Callable[[torch.Tensor, Any], torch.Tensor]  # (logits (B, V), k or p) -> logits (B, V)


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0, top_k_filter: Filter = top_k_filter,
                  top_p_filter: Filter = top_p_filter) -> torch.Tensor:
    """Set the logits of tokens outside the top-k and outside the nucleus to -inf. logits: (B, V)."""
    if 0 < top_k < logits.size(-1):
        logits = top_k_filter(logits, top_k)
    if top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    return logits


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                     top_k_filter: Filter = top_k_filter, top_p_filter: Filter = top_p_filter) -> torch.Tensor:
    """The distribution the next token is drawn from. logits: (B, V) -> probs (B, V)."""
    logits = logits.float()
    if temperature == 0:  # greedy: all mass on the arg-max
        return torch.zeros_like(logits).scatter(-1, logits.argmax(-1, keepdim=True), 1.0)
    return torch.softmax(filter_logits(logits / temperature, top_k, top_p, top_k_filter, top_p_filter), dim=-1)


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                generator: torch.Generator | None = None, top_k_filter: Filter = top_k_filter,
                top_p_filter: Filter = top_p_filter) -> torch.Tensor:
    """Draw the next token id for each row. logits: (B, V) -> ids (B, 1). The filters: the reference
    above, or the ones a model was built with."""
    probs = next_token_probs(logits, temperature, top_k, top_p, top_k_filter, top_p_filter)
    if temperature == 0:
        return probs.argmax(-1, keepdim=True)
    return torch.multinomial(probs, 1, generator=generator)  # (B, 1)


# --------------------------------------------------------------------------- the generate commands


@dataclass(frozen=True)
class GenerateConfig:
    """The flags of every stage's `generate` command (stage 2's RNNs, stage 5's GPT)."""

    checkpoint: str = field(default="", metadata={"help": "a run folder or .pt file; default: the latest run"})
    prompt: str = field(default="", metadata={"help": "text to continue; empty: start from a newline"})
    max_new_tokens: int = 500
    temperature: float = field(default=0.8, metadata={"help": "0 = greedy; < 1 sharper, > 1 more random"})
    top_k: int = field(default=40, metadata={"help": "sample among the k most likely tokens; 0 = all"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus: top tokens holding p of the mass; 1 = off"})
    num_samples: int = 1
    seed: int = 1
    interactive: bool = field(default=False, metadata={"help": "read prompts from the terminal until an empty line"})
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    stream: bool = field(default=True, metadata={"help": "print tokens as they come"})

    def __post_init__(self) -> None:
        check(self.max_new_tokens >= 1, "--max_new_tokens must be at least 1")
        check(self.num_samples >= 1, "--num_samples must be at least 1")
        check_sampling(self.temperature, self.top_k, self.top_p)


def print_samples(model, prompt_ids: list[int], decode: Callable[[list[int]], str], prompt: str,
                  cfg: GenerateConfig, out=None, **generate_options) -> list[str]:
    """Print cfg.num_samples continuations of `prompt`, streamed as they are drawn, and return them.

    `model.generate(idx, max_new_tokens, temperature, top_k, top_p, generator, **generate_options)`
    yields (1, 1) token ids (stage 2's RNNs and stage 5's GPT both do). One seeded generator serves
    all the samples: they differ from each other, and the same --seed gives the same samples.
    """
    out = out or sys.stdout
    device = next(model.parameters()).device
    idx = torch.tensor([prompt_ids], device=device)  # (1, T)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    texts = []
    for n in range(cfg.num_samples):
        if cfg.num_samples > 1:
            print(f"--- sample {n + 1}", file=out)
        print(prompt, end="", file=out, flush=True)
        ids: list[int] = []
        shown = ""
        t0 = time.perf_counter()
        for token in model.generate(idx, cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.top_p, generator,
                                    **generate_options):
            ids.append(int(token))
            if cfg.stream:
                text = decode(ids)
                if not text.endswith("\ufffd"):  # wait for the rest of a multi-byte character
                    print(text[len(shown):], end="", file=out, flush=True)
                    shown = text
        text = decode(ids)
        print(text[len(shown):] if cfg.stream else text, file=out)
        seconds = time.perf_counter() - t0
        print(f"[{len(ids)} tokens in {seconds:.2f} s, {len(ids) / seconds:.1f} tokens/s]", file=sys.stderr)
        texts.append(text)
    return texts


def run_prompts(cfg: GenerateConfig, answer: Callable[[str], list[str]]) -> list[str]:
    """Answer --prompt, or with --interactive read prompts from the terminal until an empty line or Ctrl-D."""
    if not cfg.interactive:
        return answer(cfg.prompt)
    texts = []
    print("Type a prompt and press Enter; an empty line or Ctrl-D quits.", file=sys.stderr)
    while True:
        try:
            prompt = input("prompt> ")
        except EOFError:
            break
        if not prompt:
            break
        texts += answer(prompt)
    return texts
