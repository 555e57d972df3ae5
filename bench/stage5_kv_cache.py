"""KV cache speed-up: GPT-2 124M (random weights; timing only) generating 500 new tokens, cache on vs off.

    python bench/stage5_kv_cache.py [--new_tokens 500] [--device cpu]

Without the cache every new token re-runs the whole context through all 12 layers (O(T^2) work per
sequence); with it, only the newest token goes through, attending to the stored keys and values.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stage5_gpt.config import PRESETS, GPTTrainConfig  # noqa: E402
from stage5_gpt.model import GPT  # noqa: E402


def time_generation(model: GPT, prompt: torch.Tensor, new_tokens: int, kv_cache: bool) -> tuple[float, torch.Tensor]:
    generator = torch.Generator(device=prompt.device).manual_seed(0)
    if prompt.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = torch.cat(list(model.generate(prompt, new_tokens, top_k=50, generator=generator, kv_cache=kv_cache)), 1)
    if prompt.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new_tokens", type=int, default=500)
    parser.add_argument("--prompt_tokens", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = GPTTrainConfig(**{k: v for k, v in PRESETS["gpt2"].items()})
    model = GPT(cfg.model_config(50304)).to(args.device).eval()
    prompt = torch.randint(0, 50257, (1, args.prompt_tokens), device=args.device)
    time_generation(model, prompt, 5, True)  # warm-up: allocator, kernels
    cached, a = time_generation(model, prompt, args.new_tokens, True)
    print(f"KV cache on : {args.new_tokens} tokens in {cached:7.2f} s  ({args.new_tokens / cached:6.1f} tokens/s)")
    uncached, b = time_generation(model, prompt, args.new_tokens, False)
    print(f"KV cache off: {args.new_tokens} tokens in {uncached:7.2f} s  ({args.new_tokens / uncached:6.1f} tokens/s)")
    same = (a == b).float().mean().item()
    print(f"speed-up: {uncached / cached:.1f}x (goal >= 5x); same tokens: {100 * same:.0f}% "
          f"(random weights give near-tied logits, so rounding can flip a late token)")


if __name__ == "__main__":
    main()
