"""How fast this machine multiplies matrices, measured: the peak that MFU (model FLOPs utilisation) is
taken against.

    MFU = (FLOPs the model needs per token) x (tokens per second) / (matmul FLOP/s this machine reaches)

A CPU has no spec-sheet peak that a 2-core slice of it reaches, so the peak here is measured: the best
rate of a plain matrix product at the model's own shapes, in the dtype the run computes in (bf16 under
--amp bf16, else fp32). `python bench/cpu_peak.py` prints the same measurement as a table.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch


def matmul_gflops(m: int, k: int, n: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                  seconds: float = 0.15) -> float:
    """GFLOP/s of (m, k) @ (k, n) in dtype: 2 m k n FLOPs per product, timed over ~`seconds` after a warm-up."""
    device = torch.device(device)
    generator = torch.Generator().manual_seed(0)  # its own: measuring leaves the run's random stream alone
    a = torch.randn(m, k, generator=generator).to(device, dtype)
    b = torch.randn(k, n, generator=generator).to(device, dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):  # warm-up: the library picks its kernel and packs its buffers
        a @ b
    sync()
    reps, began = 0, time.perf_counter()
    while True:
        a @ b
        reps += 1
        if reps % 4 == 0:
            sync()
            elapsed = time.perf_counter() - began
            if elapsed >= seconds:
                return 2 * m * k * n * reps / elapsed / 1e9


def peak_gflops(shapes: Iterable[tuple[int, int, int]], dtype: torch.dtype = torch.float32,
                device: torch.device | str = "cpu", seconds: float = 0.15) -> tuple[float, tuple[int, int, int]]:
    """The best matmul rate over `shapes` (m, k, n) and the shape that reached it."""
    rates = {shape: matmul_gflops(*shape, dtype=dtype, device=device, seconds=seconds) for shape in shapes}
    best = max(rates, key=rates.get)
    return rates[best], best
