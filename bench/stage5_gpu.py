"""Stage 5 on one CUDA GPU: check the CUDA paths, then measure the issue's GPU targets, in one run.

    PYTHONUNBUFFERED=1 python bench/stage5_gpu.py --out results/     (needs a CUDA GPU)

1. correctness on the GPU: SDPA (flash) vs the written-out attention, KV cache vs none,
   fp16 + GradScaler and bf16 + torch.compile training runs whose loss falls;
2. time from launch to val loss <= 1.47 on Tiny Shakespeare with the `gpu` preset, eager and compiled
   (nanoGPT on one H100: step 1750, 77 s after launch);
3. GPT-2 124M training throughput, bf16, compiled and eager (nanoGPT on one H100: ~400k tokens/s).

It prints a summary table last and writes summary.json plus the logs to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shared.records import read_history  # noqa: E402

TARGET_VAL = 1.47
RUNS = Path("/tmp/stage5_gpu_runs")  # checkpoints stay out of --out (GPT-2 ones are GBs)


def check_kernels(summary: dict) -> None:
    import torch

    from stage5_gpt.model import GPT, GPTConfig

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=97, block_size=128, n_layer=2, n_head=4, n_embd=128)
    fast = GPT(cfg).cuda().eval()
    slow = GPT(GPTConfig(**{**cfg.__dict__, "attention": "manual"})).cuda().eval()
    slow.load_state_dict(fast.state_dict())
    idx = torch.randint(0, 97, (4, 128), device="cuda")
    with torch.no_grad():
        ref = slow.double()(idx)[0]
        slow.float()
        out32 = fast(idx)[0]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out16 = fast(idx)[0].float()
            from torch.nn.attention import SDPBackend, sdpa_kernel

            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # raises if flash cannot run these shapes
                outflash = fast(idx)[0].float()
    rel = lambda a: ((a.double() - ref).norm() / ref.norm()).item()  # noqa: E731
    summary["sdpa_vs_manual_fp32_rel"] = rel(out32)
    summary["sdpa_vs_manual_bf16_rel"] = rel(out16)
    summary["flash_vs_manual_bf16_rel"] = rel(outflash)

    prompt = torch.randint(0, 97, (2, 5), device="cuda")
    outs = []
    for kv in (True, False):
        gen = torch.Generator(device="cuda").manual_seed(1)
        outs.append(torch.cat(list(fast.generate(prompt, 100, top_k=20, generator=gen, kv_cache=kv)), 1))
    summary["kv_cache_same_tokens_cuda"] = bool(torch.equal(*outs))


def train_in_process(args: list[str]) -> dict:
    from stage5_gpt.train import main

    return main(args)


def loss_fell(run_dir: Path) -> tuple[float, float]:
    rows = read_history(run_dir / "history.csv")
    return rows[0]["train_loss"], rows[-1]["train_loss"]


def check_amp_paths(summary: dict, out: Path) -> None:
    for name, flags in [("fp16_gradscaler", ["--amp", "fp16"]), ("bf16_compile", ["--amp", "bf16", "--compile"]),
                        ("manual_attention_bf16", ["--amp", "bf16", "--attention", "manual"])]:
        run_dir = RUNS / name
        t0 = time.perf_counter()
        train_in_process(["--preset", "tiny", "--device", "cuda", "--max_steps", "200", "--lr", "1e-2",
                          "--log_interval", "20", "--eval_interval", "100", "--out_dir", str(run_dir), "--overwrite",
                          *flags])
        first, last = loss_fell(run_dir)
        summary[f"{name}_loss_first_last"] = [round(first, 4), round(last, 4)]
        summary[f"{name}_ok"] = last < first - 0.5
        summary[f"{name}_seconds"] = round(time.perf_counter() - t0, 1)


def time_to_target(summary: dict, out: Path, name: str, flags: list[str], timeout: float) -> None:
    """Launch the real command; note the wall time (from launch) of the first eval with val <= 1.47."""
    run_dir = RUNS / name
    cmd = [sys.executable, "-m", "stage5_gpt.train", "--preset", "gpu", "--out_dir", str(run_dir), "--overwrite",
           *flags]
    t0 = time.perf_counter()
    reached, reached_step, lines = None, None, []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("step ") and "val_loss" in line:
                step = int(line.split()[1].split("/")[0])
                val = float(line.split("val_loss")[1].split()[0])
                if reached is None and val <= TARGET_VAL:
                    reached, reached_step = time.perf_counter() - t0, step
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                lines.append(f"killed after {timeout} s\n")
                break
        proc.wait()
    finally:
        (out / f"{name}.log").write_text("".join(lines))
        if (run_dir / "history.csv").exists():
            (out / f"{name}_history.csv").write_text((run_dir / "history.csv").read_text())
    summary[f"{name}_command"] = " ".join(cmd[1:])
    summary[f"{name}_seconds_to_{TARGET_VAL}"] = None if reached is None else round(reached, 1)
    summary[f"{name}_step_to_{TARGET_VAL}"] = reached_step
    summary[f"{name}_total_seconds"] = round(time.perf_counter() - t0, 1)
    metrics = run_dir / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        summary[f"{name}_best_val_loss"] = m.get("val_loss")
        for key in ("test_loss", "val_perplexity", "test_perplexity", "val_word_perplexity", "test_word_perplexity",
                    "params", "train_seconds"):
            if key in m:
                summary[f"{name}_{key}"] = m[key]
        summary[f"{name}_tokens_per_sec"] = m.get("tokens_per_sec")


def gpt2_throughput(summary: dict, out: Path, name: str, flags: list[str], steps: int = 30) -> None:
    """Tokens/s of GPT-2 124M between step 10 and the last step (compilation and warm-up left out)."""
    run_dir = RUNS / name
    t0 = time.perf_counter()
    train_in_process(["--preset", "gpt2", "--device", "cuda", "--max_steps", str(steps), "--grad_accum", "1",
                      "--log_interval", "5", "--eval_interval", "100000", "--eval_tokens", "16384",
                      "--warmup_steps", "5", "--out_dir", str(run_dir), "--overwrite", *flags])
    rows = {int(r["step"]): r["seconds"] for r in read_history(run_dir / "history.csv")}
    cfg = json.loads((run_dir / "config.json").read_text())
    tokens_per_step = cfg["batch_size"] * cfg["block_size"] * cfg["grad_accum"]
    summary[f"{name}_tokens_per_sec"] = round((steps - 10) * tokens_per_step / (rows[steps] - rows[10]))
    summary[f"{name}_ms_per_step"] = round(1000 * (rows[steps] - rows[10]) / (steps - 10), 1)
    summary[f"{name}_batch"] = f"{cfg['batch_size']}x{cfg['block_size']}"
    summary[f"{name}_wall_seconds"] = round(time.perf_counter() - t0, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench_out")
    parser.add_argument("--only", default="kernels,amp,target,target_compile,gpt2,gpt2_eager",
                        help="comma-separated steps: kernels, amp, target, target_compile, seeds, wikitext2, gpt2, "
                             "gpt2_eager")
    parser.add_argument("--runs", default=str(RUNS), help="where the runs' checkpoints go")
    args = parser.parse_args()
    globals()["RUNS"] = Path(args.runs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    summary: dict = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    steps = [
        ("kernels", lambda: check_kernels(summary)),
        ("amp", lambda: check_amp_paths(summary, out)),
        ("target", lambda: time_to_target(summary, out, "gpu_eager", ["--max_steps", "2500", "--eval_interval", "100"],
                                          150)),
        ("target_compile", lambda: time_to_target(summary, out, "gpu_compile",
                                                  ["--max_steps", "2500", "--eval_interval", "100", "--compile"], 150)),
        ("seeds", lambda: time_to_target(summary, out, "gpu_eager_s1", ["--max_steps", "2500", "--eval_interval",
                                                                        "100", "--seed", "1"], 150)),
        ("seeds", lambda: time_to_target(summary, out, "gpu_eager_s2", ["--max_steps", "2500", "--eval_interval",
                                                                        "100", "--seed", "2"], 150)),
        ("wikitext2", lambda: time_to_target(summary, out, "gpu_wikitext2", ["--dataset", "wikitext2"], 200)),
        ("gpt2", lambda: gpt2_throughput(summary, out, "gpt2_compile", [])),
        ("gpt2_eager", lambda: gpt2_throughput(summary, out, "gpt2_eager", ["--no-compile"], steps=20)),
    ]
    for key, fn in steps:
        if key not in args.only.split(","):
            continue
        t0 = time.perf_counter()
        try:
            fn()
        except Exception:
            summary.setdefault("errors", []).append(traceback.format_exc()[-2000:])
            print(traceback.format_exc())
        print(f"[{key}] {time.perf_counter() - t0:.1f} s", flush=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n".join(f"{k:40s} {v}" for k, v in summary.items() if k != "errors"))
    for err in summary.get("errors", []):
        print("ERROR:", err)


if __name__ == "__main__":
    main()
