"""How fast the storybook GPT trains on this CPU, each speed-up on its own and together, and the code as
of 9a6ef4e beside today's, in one run:

    python bench/stage5_cpu_speed.py                 # both parts (~10 min on 2 cores)
    python bench/stage5_cpu_speed.py --only table    # or: --only side_by_side

Part 1, the table: one training step of the storybook shape (4 layers, 256 dims, 8k BPE, context 128,
batch 16) on real batches of the books, timed in this process over 20 steps after a warm-up, with one
change at a time from the step as of 9a6ef4e (fp32, SDPA, the full logits, the foreach AdamW, eager),
then all of them, then the tokens per step and the threads. Compilation is timed apart.

Part 2, side by side: `python -m stage5_gpt.train --dataset gutenberg_children --preset cpu` with the
same shape flags, seed and steps, from `git archive 9a6ef4e` and from this checkout, one after the
other: tokens/s (over the whole run, compilation included, and over its second half) and the
validation bits per byte after the same steps (the goal: >= 2.5x the tokens/s, bits no worse by > 0.01).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shared.records import machine_description, read_history  # noqa: E402
from stage5_gpt.data import RandomWindows, load_corpus  # noqa: E402
from stage5_gpt.model import GPT, GPTConfig  # noqa: E402

OLD_COMMIT = "9a6ef4e"
BASE = dict(amp=False, attention="sdpa", lm_loss="full", fused=False, compile=False, batch=16, context=128, threads=0)
ROWS = [
    ("as of 9a6ef4e: fp32, SDPA, full logits, foreach AdamW, eager", {}),
    ("bf16 autocast", dict(amp=True)),
    ("written-out attention (instead of SDPA)", dict(attention="manual")),
    ("chunked LM head + loss", dict(lm_loss="chunked")),
    ("fused AdamW", dict(fused=True)),
    ("torch.compile", dict(compile=True)),
    ("bf16 + written-out attention", dict(amp=True, attention="manual")),
    ("bf16 + attention + chunked loss + fused AdamW", dict(amp=True, attention="manual", lm_loss="chunked",
                                                          fused=True)),
    ("all of them, compiled", dict(amp=True, attention="manual", lm_loss="chunked", fused=True, compile=True)),
    ("all, compiled, 1 thread", dict(amp=True, attention="manual", lm_loss="chunked", fused=True, compile=True,
                                     threads=1)),
    ("all, compiled, batch 32 (8,192 tokens a step)", dict(amp=True, attention="manual", lm_loss="chunked",
                                                           fused=True, compile=True, batch=32)),
    ("all, compiled, context 256 (the new cpu preset)", dict(amp=True, attention="manual", lm_loss="chunked",
                                                            fused=True, compile=True, context=256)),
]
SHAPE_FLAGS = ["--n_layer", "4", "--n_head", "4", "--n_embd", "256", "--block_size", "128", "--batch_size", "16",
               "--lr", "1e-3", "--warmup_steps", "100", "--seed", "1337"]


def time_steps(tokens, setting: dict, steps: int = 20, warmup: int = 4) -> tuple[float, float]:
    """(tokens/s over `steps` steps, seconds of the warm-up steps, compilation included)."""
    s = {**BASE, **setting}
    threads = torch.get_num_threads()
    if s["threads"]:
        torch.set_num_threads(s["threads"])
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=8192, block_size=s["context"], n_layer=4, n_head=4, n_embd=256, bias=False,
                          gelu="exact", attention=s["attention"], lm_loss=s["lm_loss"]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=s["fused"], foreach=None if s["fused"] else True)
    step_model = torch.compile(model) if s["compile"] else model
    batches = RandomWindows(tokens, s["batch"], s["context"], 0, torch.device("cpu"))

    def step(i: int) -> None:
        inputs, targets = batches(i)
        with torch.autocast("cpu", dtype=torch.bfloat16) if s["amp"] else contextlib.nullcontext():
            _, loss = step_model(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    began = time.perf_counter()
    for i in range(warmup):
        step(i)
    warm = time.perf_counter() - began
    began = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    rate = steps * s["batch"] * s["context"] / (time.perf_counter() - began)
    torch.set_num_threads(threads)
    return rate, warm


def table() -> None:
    tokens = load_corpus("gutenberg_children", "bpe").splits["train"]
    print(f"Part 1: one storybook training step, {machine_description('cpu')}, torch {torch.__version__}\n")
    print("| step | tokens/s | vs 9a6ef4e | warm-up s (4 steps) |")
    print("|---|---|---|---|")
    base = None
    for name, setting in ROWS:
        rate, warm = time_steps(tokens, setting)
        base = base or rate
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x | {warm:.1f} |", flush=True)


def train_run(code: Path, out: Path, steps: int) -> dict:
    """One train command in `code` (a checkout); its metrics, its history and its wall time."""
    flags = ["--dataset", "gutenberg_children", "--preset", "cpu", *SHAPE_FLAGS, "--max_steps", str(steps),
             "--eval_interval", str(steps), "--log_interval", "50", "--eval_tokens", str(1 << 18),
             "--final_eval_tokens", str(1 << 18), "--out_dir", str(out)]
    env = {**os.environ, "LLM_DATA_DIR": str(REPO.parent / "shared" / "data"), "PYTHONPATH": str(code)}
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "stage5_gpt.train", *flags], cwd=code, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the run in {code} failed:\n{done.stderr[-3000:]}")
    history = read_history(out / "history.csv")
    half = [row for row in history if row["step"] >= steps // 2]
    late = (half[-1]["step"] - half[0]["step"]) * 16 * 128 / (half[-1]["seconds"] - half[0]["seconds"])
    return {**json.loads((out / "metrics.json").read_text()), "late_tokens_per_sec": late,
            "wall": time.perf_counter() - began, "first_line": done.stdout.splitlines()[0]}


def side_by_side(steps: int) -> None:
    with tempfile.TemporaryDirectory(prefix="stage5-speed-") as tmp:
        old = Path(tmp) / "old"
        old.mkdir()
        archive = subprocess.run(["git", "archive", OLD_COMMIT], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        then = train_run(old, Path(tmp) / "run-old", steps)
        now = train_run(REPO, Path(tmp) / "run-new", steps)
    print(f"\nPart 2: `python -m stage5_gpt.train --dataset gutenberg_children --preset cpu {' '.join(SHAPE_FLAGS)} "
          f"--max_steps {steps}`, {machine_description('cpu')}\n")
    print(f"today's first line: {now['first_line']}\n")
    print(f"| code | tokens/s (whole run) | tokens/s (second half) | val bits/byte after {steps} steps | "
          f"train s | wall s |")
    print("|---|---|---|---|---|---|")
    for name, r in ((f"as of {OLD_COMMIT}", then), ("today", now)):
        print(f"| {name} | {r['tokens_per_sec']:,.0f} | {r['late_tokens_per_sec']:,.0f} | "
              f"{r['val_bits_per_byte']:.4f} | {r['train_seconds']:.1f} | {r['wall']:.1f} |")
    ratio = now["tokens_per_sec"] / then["tokens_per_sec"]
    late = now["late_tokens_per_sec"] / then["late_tokens_per_sec"]
    worse = now["val_bits_per_byte"] - then["val_bits_per_byte"]
    print(f"\nspeed-up {ratio:.2f}x over the whole run ({late:.2f}x over its second half; goal >= 2.5x); "
          f"val bits per byte {worse:+.4f} (goal <= +0.01): "
          f"{'met' if ratio >= 2.5 and worse <= 0.01 else 'not met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["table", "side_by_side"], help="run one part only")
    parser.add_argument("--steps", type=int, default=400, help="steps of each side-by-side run")
    args = parser.parse_args()
    if args.only != "side_by_side":
        table()
    if args.only != "table":
        side_by_side(args.steps)


if __name__ == "__main__":
    main()
