"""This machine's matrix-product rate in fp32 and bf16 at stage 5's own shapes: the peak MFU is taken against.

    python bench/cpu_peak.py            # -> a table like bench/results/cpu_peak.txt

For each cpu preset (the storybook GPT that stage 6 starts from, and Tiny Shakespeare's), every weight
matrix product one training step's forward pass makes, (tokens x k) @ (k x n), timed on its own with
torch's default threads. Stage 5's training measures the same way at its start (shared/flops.py) and
prints MFU against the best of these in the dtype it computes in.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.cli import parse_config  # noqa: E402
from shared.flops import matmul_gflops  # noqa: E402
from shared.records import machine_description  # noqa: E402
from stage5_gpt.config import PRESETS, GPTTrainConfig  # noqa: E402
from stage5_gpt.model import GPT  # noqa: E402


def preset_model(dataset: str, vocab_size: int) -> tuple[GPT, int]:
    """The cpu preset's GPT for `dataset` and its tokens per step."""
    cfg = parse_config(GPTTrainConfig, PRESETS, ["--preset", "cpu", "--dataset", dataset])
    return GPT(cfg.model_config(vocab_size)), cfg.batch_size * cfg.block_size


def main() -> None:
    names = ["q, k, v", "attention out", "MLP in", "MLP out", "LM head"]  # the order of GPT.matmul_shapes
    print(f"{machine_description('cpu')}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'preset':26s} {'product':14s} {'m x k @ k x n':>22s} {'fp32 GFLOP/s':>13s} {'bf16 GFLOP/s':>13s} "
          f"{'bf16/fp32':>9s}")
    for dataset, vocab in (("gutenberg_children", 8192), ("tinyshakespeare", 65)):
        model, tokens = preset_model(dataset, vocab)
        for label, (m, k, n) in zip(names, model.matmul_shapes(tokens)):
            fp32 = matmul_gflops(m, k, n, torch.float32, seconds=0.5)
            bf16 = matmul_gflops(m, k, n, torch.bfloat16, seconds=0.5)
            print(f"{dataset + ' cpu':26s} {label:14s} {f'{m}x{k} @ {k}x{n}':>22s} {fp32:13,.0f} {bf16:13,.0f} "
                  f"{bf16 / fp32:8.2f}x")


if __name__ == "__main__":
    main()
