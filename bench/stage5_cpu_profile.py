"""Where one storybook training step's time goes on this CPU: `python bench/stage5_cpu_profile.py`.

The storybook shape (4 layers, 256 dims, 8k BPE, batch 16, context 128) on real batches, the mean of
20 steps after a warm-up, for the step as of 9a6ef4e (fp32, SDPA, the full logits, foreach AdamW) and
today's step run eager (bf16, the written-out attention, the chunked head and loss, fused AdamW;
compiled, the step is a few generated kernels that cannot be taken apart this way). On a CPU every
operator finishes before the next starts, so a clock read between the phases splits the step; a
gradient hook on the blocks' output marks where the backward pass leaves the LM head:

    data                 drawing the batch's windows
    blocks, forward      embeddings, 4 blocks, the final norm
    head + loss, fwd     the LM head's product and the cross-entropy
    head + loss, bwd     their backward pass, down to the gradient of the blocks' output
    blocks, backward     the rest of the backward pass
    optimizer            gradient clipping, AdamW's update, zeroing the gradients

(torch.profiler, tried first, slowed the chunked loss's many small operators several times over and
so misreported it; a clock does not.)
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shared.records import machine_description  # noqa: E402
from stage5_gpt.chunked_loss import chunked_lm_loss  # noqa: E402
from stage5_gpt.data import RandomWindows, load_corpus  # noqa: E402
from stage5_gpt.model import GPT, GPTConfig  # noqa: E402

VOCAB, B, T, STEPS = 8192, 16, 128, 20
SETTINGS = {"as of 9a6ef4e (fp32, SDPA, full logits, foreach AdamW)":
                dict(amp=False, attention="sdpa", lm_loss="full", fused=False),
            "today, eager (bf16, written-out attention, chunked loss, fused AdamW)":
                dict(amp=True, attention="manual", lm_loss="chunked", fused=True)}
PHASES = ["data", "blocks, forward", "head + loss, fwd", "head + loss, bwd", "blocks, backward", "optimizer"]


def phase_times(tokens, amp: bool, attention: str, lm_loss: str, fused: bool) -> dict[str, float]:
    """Milliseconds per step in each phase (the mean over STEPS steps after 5 of warm-up)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, block_size=T, n_layer=4, n_head=4, n_embd=256, bias=False, gelu="exact",
                          attention=attention, lm_loss=lm_loss))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused, foreach=None if fused else True)
    batches = RandomWindows(tokens, B, T, 0, torch.device("cpu"))
    totals: dict[str, float] = defaultdict(float)
    for i in range(5 + STEPS):
        marks = [time.perf_counter()]
        inputs, targets = batches(i)
        marks.append(time.perf_counter())
        with torch.autocast("cpu", dtype=torch.bfloat16) if amp else contextlib.nullcontext():
            hidden = model.features(inputs)  # (B, T, C)
            marks.append(time.perf_counter())
            if lm_loss == "chunked":
                loss = chunked_lm_loss(hidden, model.lm_head.weight, targets)
            else:
                loss = F.cross_entropy(model.lm_head(hidden).float().flatten(0, 1), targets.flatten())
        marks.append(time.perf_counter())
        head_done = []
        hidden.register_hook(lambda grad, done=head_done: done.append(time.perf_counter()))
        loss.backward()
        marks += [head_done[0], time.perf_counter()]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        marks.append(time.perf_counter())
        if i >= 5:
            for name, began, ended in zip(PHASES, marks, marks[1:]):
                totals[name] += (ended - began) * 1000 / STEPS
    return totals


def main() -> None:
    tokens = load_corpus("gutenberg_children", "bpe").splits["train"]
    results = {name: phase_times(tokens, **setting) for name, setting in SETTINGS.items()}
    print(f"One storybook training step (4 layers, 256 dims, batch {B}, context {T}, {VOCAB:,}-token BPE), "
          f"{machine_description('cpu')}, torch {torch.__version__}: milliseconds per step (share)\n")
    print("| phase | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for phase in PHASES:
        print(f"| {phase} | " + " | ".join(f"{ms[phase]:.1f} ({100 * ms[phase] / sum(ms.values()):.0f}%)"
                                           for ms in results.values()) + " |")
    print("| **the whole step** | " + " | ".join(f"**{sum(ms.values()):.1f}** "
                                                 f"({B * T / sum(ms.values()) * 1000:,.0f} tokens/s)"
                                                 for ms in results.values()) + " |")


if __name__ == "__main__":
    main()
