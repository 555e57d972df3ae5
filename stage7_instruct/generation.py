"""Writing a reply: sample after <|assistant|> until <|end|>, with stage 5's KV cache, streamed as whole
characters. Used by evaluate, chat, serve and DPO's storybook pairs, so all of them see the same replies.

A byte-level BPE token can end in the middle of a character (a Chinese character is 3 bytes, often two
tokens), so the stream keeps the bytes of an unfinished character until the rest arrive; a UTF-8
incremental decoder does exactly that.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from stage5_gpt.model import GPT
from stage7_instruct.model import ChatTokenizer


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 160
    temperature: float = 0.0  # 0: greedy
    top_k: int = 0
    top_p: float = 1.0


def stop_ids(tokenizer: ChatTokenizer) -> set[int]:
    """<|end|> ends a reply; <|user|> or <|endoftext|> mean the model has stopped too (a base model's way)."""
    return {tokenizer.end, tokenizer.user} | ({tokenizer.eot} if tokenizer.eot is not None else set())


def token_bytes(tokenizer: ChatTokenizer, token: int) -> bytes:
    base = tokenizer.base
    if token >= base.size or token == tokenizer.eot:
        return b""
    if base.kind == "bpe":
        return base.bpe.vocab[token]
    return base._gpt2.decode_single_token_bytes(token)


def reply_tokens(model: GPT, prompt_ids: Sequence[int], tokenizer: ChatTokenizer, sampling: Sampling,
                 generator: torch.Generator | None = None) -> Iterator[int]:
    """Yield the reply's token ids one at a time; the stop token is not yielded. The reply never runs past
    the context: prompt + reply <= block_size."""
    device = next(model.parameters()).device
    budget = min(sampling.max_new_tokens, model.cfg.block_size - len(prompt_ids))
    if budget <= 0:
        return
    stops = stop_ids(tokenizer)
    idx = torch.tensor([list(prompt_ids)], device=device)  # (1, T)
    for next_id in model.generate(idx, budget, sampling.temperature, sampling.top_k, sampling.top_p, generator):
        token = int(next_id[0, 0])
        if token in stops:
            return
        yield token


def stream_text(tokens: Iterator[int], tokenizer: ChatTokenizer) -> Iterator[str]:
    """Whole characters as the tokens come: the bytes of a character cut between two tokens are held back."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for token in tokens:
        text = decoder.decode(token_bytes(tokenizer, token))
        if text:
            yield text
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def sample_replies(model: GPT, prompt_ids: Sequence[int], tokenizer: ChatTokenizer, sampling: Sampling, n: int,
                   generator: torch.Generator | None = None) -> list[tuple[list[int], bool]]:
    """n replies to one prompt at once (a batch of n rows, the same length): (ids, stopped) for each."""
    device = next(model.parameters()).device
    budget = min(sampling.max_new_tokens, model.cfg.block_size - len(prompt_ids))
    stops = stop_ids(tokenizer)
    replies: list[list[int]] = [[] for _ in range(n)]
    done = [False] * n
    if budget <= 0:
        return [(r, False) for r in replies]
    idx = torch.tensor([list(prompt_ids)] * n, device=device)  # (n, T)
    for next_ids in model.generate(idx, budget, sampling.temperature, sampling.top_k, sampling.top_p, generator):
        for row, token in enumerate(next_ids[:, 0].tolist()):
            if done[row]:
                continue
            if token in stops:
                done[row] = True
            else:
                replies[row].append(token)
        if all(done):
            break
    return list(zip(replies, done))
