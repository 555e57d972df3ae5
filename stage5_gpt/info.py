"""Parameters and FLOPs of a GPT shape: `python -m stage5_gpt.info --preset gpt2`.

FLOPs per token follow Kaplan et al. (2020): the forward pass costs 2 FLOPs per weight it multiplies
(a multiply and an add), plus 2 * n_layer * context * n_embd for the attention scores; training
(forward + backward) costs about 3x the forward pass. The MFU that train prints counts the same
work PaLM's way (model.GPT.flops_per_token: 6 per weight plus 12 * n_layer * context * n_embd, the
masked half of the scores included), printed here beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.cli import run_main
from stage5_gpt.config import PRESETS, GPTTrainConfig
from stage5_gpt.data import DEFAULT_BPE_VOCAB
from stage5_gpt.model import GPT


def shape_report(model: GPT) -> dict[str, float]:
    cfg = model.cfg
    embedding = model.transformer.wte.weight.numel() + (
        model.transformer.wpe.weight.numel() if "wpe" in model.transformer else 0)
    blocks = sum(p.numel() for p in model.transformer.h.parameters())
    matmul_weights = sum(m.weight.numel() for name, m in model.named_modules()
                         if name.startswith("transformer.h") and hasattr(m, "weight") and m.weight.dim() == 2)
    matmul_weights += model.lm_head.weight.numel()  # the output projection is a matmul too (tied to wte)
    forward = 2 * matmul_weights + 2 * cfg.n_layer * cfg.block_size * cfg.n_embd
    return {"parameters": sum(p.numel() for p in model.parameters()), "embedding parameters": embedding,
            "transformer block parameters": blocks, "forward FLOPs per token": forward,
            "training FLOPs per token (3x forward)": 3 * forward,
            "training FLOPs per token as MFU counts them (PaLM)": model.flops_per_token(cfg.block_size),
            "weights in fp32 (MB)": 4 * sum(p.numel() for p in model.parameters()) / 1e6,
            "weights + gradients + AdamW state in fp32 (MB)": 16 * sum(p.numel() for p in model.parameters()) / 1e6,
            "Chinchilla-optimal training tokens (20 per parameter)": 20 * blocks}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    from shared.cli import parse_config

    cfg = parse_config(GPTTrainConfig, PRESETS, argv, prog="python -m stage5_gpt.info",
                       description="Parameters and FLOPs per token of a GPT shape (no data needed).")
    # Tiny Shakespeare's 65 characters + 4 specials; our learned BPE; GPT-2's 50,257 padded to a multiple of 64
    vocab = {"char": 69, "bpe": cfg.vocab_size or DEFAULT_BPE_VOCAB}.get(cfg.tokenizer_name, 50304)
    model = GPT(cfg.model_config(vocab))
    print(f"preset {cfg.preset}: {cfg.n_layer} layers, {cfg.n_head} heads, {cfg.n_embd} dims, "
          f"context {cfg.block_size}, vocab {vocab} ({cfg.tokenizer_name})")
    report = shape_report(model)
    # What this preset trains on: compare with the Chinchilla line above (and with the corpus size:
    # Tiny Shakespeare's train split is 1.0M characters, so the gpu preset reads it about 40 times).
    report["training tokens (steps x batch x grad_accum x context)"] = (
        cfg.max_steps * cfg.batch_size * cfg.grad_accum * cfg.block_size)
    report["training tokens per parameter"] = (
        report["training tokens (steps x batch x grad_accum x context)"] / report["parameters"])
    for key, value in report.items():
        print(f"  {key:55s} {value:>16,.1f}" if value < 100 else f"  {key:55s} {value:>16,.0f}")
    return report


if __name__ == "__main__":
    run_main(main)
