"""Sample text from a trained GPT, streamed token by token.

    python -m stage5_gpt.generate --prompt "ROMEO:" --max_new_tokens 300
    python -m stage5_gpt.generate --checkpoint runs/stage5_gpt/tinyshakespeare-cpu --temperature 0.8 --top_k 40
    python -m stage5_gpt.generate --interactive                  # a prompt loop; empty line or Ctrl-D quits
    python -m stage5_gpt.generate --checkpoint path/to/gpt2-hf   # a Hugging Face GPT-2 folder
    python -m stage5_gpt.generate --yours --top_p 0.9            # your filters (top_p_filter only when --top_p < 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.check import use_yours, yours_settings
from shared.checkpoint import latest_run
from shared.cli import parse_config, run_main
from shared.devices import resolve_device
from shared.sampling import GenerateConfig, print_samples, run_prompts
from stage5_gpt.data import GPT2_EOT
from stage5_gpt.model import Parts
from stage5_gpt.train import STAGE, load_model


@dataclass(frozen=True)
class GPTGenerateConfig(GenerateConfig):
    kv_cache: bool = field(default=True, metadata={"help": "reuse past keys/values (--no-kv_cache: recompute all)"})
    yours: bool = field(default=False, metadata={
        "help": "sample with your own parts from yours.py: the filters, the attention, the cache"})
    yours_file: str = field(default="", metadata={"help": "with --yours: another file with the same functions"})


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    if not prompt:
        return [GPT2_EOT] if tokenizer.kind == "gpt2" else tokenizer.encode("\n")
    return tokenizer.encode(prompt, strict=True)  # characters the model never saw: a clear error


def sample(model, tokenizer, cfg: GPTGenerateConfig, prompt: str) -> list[str]:
    return print_samples(model, encode_prompt(tokenizer, prompt), tokenizer.decode, prompt, cfg,
                         kv_cache=cfg.kv_cache)


def main(argv: Sequence[str] | None = None) -> list[str]:
    cfg = parse_config(GPTGenerateConfig, {}, argv, prog=f"python -m {STAGE}.generate",
                       description="Sample text from a trained GPT (or a Hugging Face GPT-2 folder).")
    device = resolve_device(cfg.device)  # first: a device this machine lacks fails at once
    yours = use_yours(STAGE, cfg.yours_file or None, doing="sampling") if cfg.yours else {}
    settings = yours_settings(STAGE) if yours else {}  # the written-out attention, which calls yours
    model, tokenizer, _ = load_model(cfg.checkpoint or latest_run(STAGE), device, Parts(**yours), **settings)
    return run_prompts(cfg, lambda prompt: sample(model.eval(), tokenizer, cfg, prompt))


if __name__ == "__main__":
    run_main(main)
