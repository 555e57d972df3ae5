"""Continued pretraining on the task's own texts before finetuning (`--adapt_steps N`).

The storybook GPT has read children's books; SST-2 is lower-cased movie-review phrases, SMS spam is
text-message shorthand. Before the classifier is trained, the GPT goes on predicting the next token,
now on the task's training texts with their labels unused ("domain-adaptive pretraining", Gururangan
et al. 2020, "Don't Stop Pretraining"): every weight trained, the same loss as stage 5. Only the
training split is read, never the validation or test texts.

    stream  = text 1 <|endoftext|> text 2 <|endoftext|> ...        (the training texts, in order)
    batches = random windows of the stream, as stage 5 trains       (stage5_gpt.data.RandomWindows)
    N steps of AdamW at --adapt_lr (linear warmup over the first tenth), then the finetuning as usual
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from shared.run import TrainingDiverged
from shared.train import make_adamw
from stage5_gpt.data import RandomWindows
from stage5_gpt.model import GPT
from stage6_finetune_cls.data import EncodedSplit, pad_id

WINDOW, BATCH = 128, 16  # tokens per window, windows per step: 2,048 tokens a step, as stage 5 trained


def text_stream(split: EncodedSplit, separator: int) -> np.ndarray:
    """The split's texts one after another, each followed by the separator token: (tokens,)."""
    pieces = [np.append(split.ids[i, :int(split.lengths[i])].numpy(), separator) for i in range(len(split))]
    return np.concatenate(pieces).astype(np.int64)


@torch.no_grad()
def stream_loss(gpt: GPT, stream: np.ndarray, run, windows: int = 64) -> float:
    """Mean next-token loss over up to `windows` evenly spaced windows of the stream."""
    gpt.eval()
    window = min(WINDOW, gpt.cfg.block_size, len(stream) - 1)
    starts = np.linspace(0, len(stream) - window - 1, min(windows, max(1, len(stream) // window))).astype(int)
    tokens = torch.from_numpy(np.stack([stream[s:s + window + 1] for s in starts])).to(run.device)  # (W, T+1)
    with run.autocast():
        logits, _ = gpt(tokens[:, :-1])  # (W, T, V)
    return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten()).item()


def adapt_to_texts(gpt: GPT, train: EncodedSplit, val: EncodedSplit, tokenizer, run) -> dict[str, float]:
    """Train `gpt` (on run.device) for run.cfg.adapt_steps steps on the training texts; return what it did."""
    cfg = run.cfg
    separator = pad_id(tokenizer)
    stream, val_stream = text_stream(train, separator), text_stream(val, separator)
    window = min(WINDOW, gpt.cfg.block_size)
    batches = RandomWindows(stream, BATCH, window, cfg.seed, run.device)
    before = stream_loss(gpt, val_stream, run)
    optimizer = make_adamw(gpt, cfg.adapt_lr, 0.1, run.device)
    warmup = max(1, cfg.adapt_steps // 10)
    started = time.perf_counter()
    gpt.train()
    for step in range(cfg.adapt_steps):
        for group in optimizer.param_groups:
            group["lr"] = cfg.adapt_lr * min(1.0, (step + 1) / warmup)
        inputs, targets = batches(step)  # (B, T), (B, T)
        with run.autocast():
            _, loss = gpt(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gpt.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if not math.isfinite(loss.item()):
            raise TrainingDiverged(f"the next-token loss on the task's texts became {loss.item()} at step {step + 1} "
                                   f"of --adapt_steps; lower --adapt_lr (now {cfg.adapt_lr}) and train again.")
    seconds = time.perf_counter() - started
    after = stream_loss(gpt, val_stream, run)
    print(f"adapted on the task's {len(train):,} training texts ({len(stream):,} tokens, labels unused): "
          f"{cfg.adapt_steps} steps in {seconds:.1f} s; next-token loss on the val texts {before:.3f} -> {after:.3f}")
    return {"adapt_steps": cfg.adapt_steps, "adapt_tokens": cfg.adapt_steps * BATCH * window,
            "adapt_seconds": round(seconds, 2), "adapt_val_lm_loss_before": round(before, 4),
            "adapt_val_lm_loss_after": round(after, 4)}
