"""Where one storybook training step's time goes on this CPU: `python bench/stage5_cpu_profile.py`.

The storybook cpu shape (4 layers, 256 dims, 8k BPE, batch 16, context 128) on real batches, profiled
with torch.profiler over 10 steps after a warm-up, for the step as of 9a6ef4e (fp32, SDPA, full logits,
foreach AdamW) and today's eager step (bf16, written-out attention, chunked head and loss, fused
AdamW; compiled, the step is a few opaque generated kernels, so it is profiled eager). Each operator's
own time is put in one of:

    matmuls in the blocks      mm / addmm / bmm of q k v, projections, MLP (not the LM head's)
    attention                  SDPA, or the written-out scores, mask and softmax (T x T shapes)
    LM head + cross-entropy    any operator on a (.., vocab) tensor: the head's products, log-softmax, loss
    norms and activations      LayerNorm, GELU and their backward passes
    optimizer and clipping     AdamW's update, the gradient norm, zeroing the gradients
    data                       drawing the batch's windows
    other                      what is left of the step's wall time: Python, autograd's bookkeeping, copies
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shared.records import machine_description  # noqa: E402
from stage5_gpt.data import RandomWindows, load_corpus  # noqa: E402
from stage5_gpt.model import GPT, GPTConfig  # noqa: E402

VOCAB, B, T, STEPS = 8192, 16, 128, 10
STEPS_PROFILED = {"as of 9a6ef4e (fp32, SDPA, full logits, foreach AdamW)": dict(amp=False, attention="sdpa",
                                                                                 lm_loss="full", fused=False),
                  "today, eager (bf16, written-out attention, chunked loss, fused AdamW)":
                      dict(amp=True, attention="manual", lm_loss="chunked", fused=True)}
ORDER = ["matmuls in the blocks", "attention", "LM head + cross-entropy", "norms and activations",
         "optimizer and clipping", "data", "other"]


def category(name: str, shapes: list) -> str | None:
    dims = [d for shape in shapes if isinstance(shape, list) for d in shape]
    if name.startswith("aten::") and VOCAB in dims:
        return "LM head + cross-entropy"
    if "scaled_dot_product" in name or any(isinstance(s, list) and s[-2:] == [T, T] for s in shapes):
        return "attention"
    if name in ("aten::mm", "aten::addmm", "aten::bmm"):
        return "matmuls in the blocks"
    if "layer_norm" in name or "gelu" in name:
        return "norms and activations"
    if "adamw" in name or "_foreach" in name or "vector_norm" in name or "zero_grad" in name:
        return "optimizer and clipping"
    return None


def profile_step(tokens, amp: bool, attention: str, lm_loss: str, fused: bool) -> tuple[dict[str, float], float]:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, block_size=T, n_layer=4, n_head=4, n_embd=256, bias=False, gelu="exact",
                          attention=attention, lm_loss=lm_loss))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused, foreach=None if fused else True)
    batches = RandomWindows(tokens, B, T, 0, torch.device("cpu"))

    def step(i: int) -> None:
        with record_function("data"):
            inputs, targets = batches(i)
        with torch.autocast("cpu", dtype=torch.bfloat16) if amp else contextlib.nullcontext():
            _, loss = model(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for i in range(5):
        step(i)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        began = time.perf_counter()
        for i in range(5, 5 + STEPS):
            step(i)
        wall = (time.perf_counter() - began) / STEPS * 1000
    ms: dict[str, float] = defaultdict(float)
    for event in prof.key_averages(group_by_input_shape=True):
        if event.key == "data":
            ms["data"] += event.cpu_time_total / 1000 / STEPS  # the range, its operators included
            continue
        group = category(event.key, event.input_shapes or [])
        if group:
            ms[group] += event.self_cpu_time_total / 1000 / STEPS
    ms["other"] = max(0.0, wall - sum(ms.values()))
    return ms, wall


def main() -> None:
    tokens = load_corpus("gutenberg_children", "bpe").splits["train"]
    results = {name: profile_step(tokens, **setting) for name, setting in STEPS_PROFILED.items()}
    print(f"One storybook training step (4 layers, 256 dims, batch {B}, context {T}, {VOCAB:,}-token BPE), "
          f"{machine_description('cpu')}, torch {torch.__version__}: milliseconds per step (share)\n")
    names = list(results)
    print("| where the time goes | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for group in ORDER:
        cells = [f"{ms.get(group, 0):.1f} ({100 * ms.get(group, 0) / wall:.0f}%)" for ms, wall in results.values()]
        print(f"| {group} | " + " | ".join(cells) + " |")
    print("| **the whole step** | " + " | ".join(f"**{wall:.1f}** ({B * T / wall * 1000:,.0f} tokens/s)"
                                                 for _, wall in results.values()) + " |")


if __name__ == "__main__":
    main()
