"""Sample text from a trained GPT, streamed token by token.

    python -m stage5_gpt.generate --prompt "ROMEO:" --max_new_tokens 300
    python -m stage5_gpt.generate --checkpoint runs/stage5_gpt/tinyshakespeare-cpu --temperature 0.8 --top_k 40
    python -m stage5_gpt.generate --interactive                  # a prompt loop; empty line or Ctrl-D quits
    python -m stage5_gpt.generate --checkpoint path/to/gpt2-hf   # a Hugging Face GPT-2 folder
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from shared.cli import check, parse_config, run_main
from shared.sampling import check_sampling
from shared.train import resolve_device
from stage5_gpt.data import GPT2_EOT
from stage5_gpt.train import STAGE, latest_run, load_model


@dataclass(frozen=True)
class GenerateConfig:
    checkpoint: str = field(default="", metadata={"help": "run folder, .pt or HF GPT-2 folder; default: latest run"})
    prompt: str = field(default="", metadata={"help": "text to continue; empty: start from a newline / <|endoftext|>"})
    max_new_tokens: int = 500
    temperature: float = field(default=0.8, metadata={"help": "0 = greedy; < 1 sharper, > 1 more random"})
    top_k: int = field(default=40, metadata={"help": "sample among the k most likely tokens; 0 = all"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus: top tokens holding p of the mass; 1 = off"})
    num_samples: int = 1
    seed: int = 1
    kv_cache: bool = field(default=True, metadata={"help": "reuse past keys/values (--no-kv_cache: recompute all)"})
    interactive: bool = field(default=False, metadata={"help": "read prompts from the terminal until an empty line"})
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    stream: bool = field(default=True, metadata={"help": "print tokens as they come"})

    def __post_init__(self) -> None:
        check(self.max_new_tokens >= 1, "--max_new_tokens must be at least 1")
        check(self.num_samples >= 1, "--num_samples must be at least 1")
        check_sampling(self.temperature, self.top_k, self.top_p)


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    if not prompt:
        return [GPT2_EOT] if tokenizer.kind == "gpt2" else tokenizer.encode("\n")
    return tokenizer.encode(prompt, strict=True)  # characters the model never saw: a clear error


def sample(model, tokenizer, cfg: GenerateConfig, prompt: str, out=None) -> list[str]:
    """Generate cfg.num_samples continuations of `prompt`; print them (streamed) and return them."""
    out = out or sys.stdout
    device = next(model.parameters()).device
    ids = encode_prompt(tokenizer, prompt)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    texts = []
    for n in range(cfg.num_samples):
        if cfg.num_samples > 1:
            print(f"--- sample {n + 1}", file=out)
        idx = torch.tensor([ids], device=device)  # (1, T)
        new: list[int] = []
        shown = ""
        print(prompt, end="", file=out, flush=True)
        t0 = time.perf_counter()
        for next_id in model.generate(idx, cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.top_p,
                                      generator, kv_cache=cfg.kv_cache):
            new.append(int(next_id))
            if cfg.stream:
                text = tokenizer.decode(new)
                if not text.endswith("\ufffd"):  # wait for the rest of a multi-byte character
                    print(text[len(shown):], end="", file=out, flush=True)
                    shown = text
        text = tokenizer.decode(new)
        print(text[len(shown):] if cfg.stream else text, file=out)
        seconds = time.perf_counter() - t0
        print(f"[{len(new)} tokens in {seconds:.2f} s, {len(new) / seconds:.1f} tokens/s]", file=sys.stderr)
        texts.append(text)
    return texts


def main(argv: Sequence[str] | None = None) -> list[str]:
    cfg = parse_config(GenerateConfig, {}, argv, prog=f"python -m {STAGE}.generate",
                       description="Sample text from a trained GPT.")
    model, tokenizer = load_model(cfg.checkpoint or latest_run(), resolve_device(cfg.device))
    model.eval()
    if not cfg.interactive:
        return sample(model, tokenizer, cfg, cfg.prompt)
    texts = []
    print("Type a prompt and press Enter; an empty line or Ctrl-D quits.", file=sys.stderr)
    while True:
        try:
            prompt = input("prompt> ")
        except EOFError:
            break
        if not prompt:
            break
        texts += sample(model, tokenizer, cfg, prompt)
    return texts


if __name__ == "__main__":
    run_main(main)
