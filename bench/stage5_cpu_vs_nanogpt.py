"""Our `cpu` preset beside nanoGPT's CPU configuration (its README), same shapes and batch, one run.

    git clone https://github.com/karpathy/nanoGPT /somewhere/nanoGPT        # outside this repository
    python bench/stage5_cpu_vs_nanogpt.py --nanogpt /somewhere/nanoGPT

Both train a 4-layer, 4-head, 128-dim GPT on Tiny Shakespeare characters, context 64, batch 12, for
2000 steps, one after the other on this machine: nanoGPT's CPU config (fp32, its defaults) and our
cpu preset as it is (bf16 where the CPU has it, the written-out attention, the fused AdamW); add
`--ours_flags "--batch_size 48 --max_steps 500"` to try other tokens per step. The script prints:
  - training tokens/s of each (evaluation time left out of both) and our speed over theirs;
  - each one's own val loss estimate, and both final models scored by the same code on the whole
    val split (their checkpoint loads into our GPT by a straight copy: same parameter names);
  - the training time each needs to reach nanoGPT's final val loss.
nanoGPT's checkout is copied to a temporary folder, its data prepared from our offline mirror.
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

NANOGPT_CPU = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
               "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128",
               "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0"]
TOKENS_PER_STEP = 12 * 64  # nanoGPT's


def run_nanogpt(checkout: Path, work: Path) -> dict:
    from shared.data_registry import data_file

    copy = work / "nanoGPT"
    shutil.copytree(checkout, copy, ignore=shutil.ignore_patterns(".git"))
    data_dir = copy / "data" / "shakespeare_char"
    shutil.copy(data_file("tinyshakespeare", "all"), data_dir / "input.txt")  # so prepare.py need not download
    subprocess.run([sys.executable, "prepare.py"], cwd=data_dir, check=True, capture_output=True)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "train.py", *NANOGPT_CPU, f"--out_dir={work / 'out-nanogpt'}"], cwd=copy,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (work / "nanogpt.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"nanoGPT failed (see {work / 'nanogpt.log'}):\n{done.stderr[-2000:]}")
    # "iter 17: loss 3.1234, time 45.67ms, mfu ..." ; eval steps (every 250) include the eval: left out.
    times = [(int(i), float(ms)) for i, ms in re.findall(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms", done.stdout)]
    step_ms = [ms for i, ms in times if i > 10 and i % 250 != 0]
    vals = re.findall(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)", done.stdout)
    return {"tokens_per_sec": TOKENS_PER_STEP / (statistics.fmean(step_ms) / 1000), "own_val_loss": float(vals[-1][2]),
            "train_seconds": 2000 * statistics.fmean(step_ms) / 1000,
            "wall_seconds": wall, "checkpoint": work / "out-nanogpt" / "ckpt.pt", "meta": data_dir / "meta.pkl"}


def score_nanogpt_checkpoint(checkpoint: Path, meta_path: Path) -> float:
    """nanoGPT's final model, loaded into our GPT (same names) and scored on the whole val split."""
    import numpy as np
    import torch

    from shared.course_data import split_train_val_text
    from shared.data_registry import read_text
    from stage5_gpt.data import score_tokens
    from stage5_gpt.model import GPT, GPTConfig

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)  # nanoGPT pickles its config too
    args = state["model_args"]
    model = GPT(GPTConfig(vocab_size=args["vocab_size"], block_size=args["block_size"], n_layer=args["n_layer"],
                          n_head=args["n_head"], n_embd=args["n_embd"], bias=args["bias"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in state["model"].items()})
    stoi = pickle.loads(meta_path.read_bytes())["stoi"]
    val = np.array([stoi[c] for c in split_train_val_text(read_text("tinyshakespeare"))[1]], dtype=np.uint16)
    nats, count, _ = score_tokens(model.eval(), val, args["block_size"], 64, torch.device("cpu"))
    return nats / count


def run_ours(work: Path, extra_flags: list[str]) -> dict:
    from shared.records import read_history

    out = work / "ours"
    t0 = time.perf_counter()
    # Evaluating every 100 steps (evals are not counted as training time) to see when a loss is reached.
    done = subprocess.run([sys.executable, "-m", "stage5_gpt.train", "--preset", "cpu", "--device", "cpu",
                           "--eval_interval", "100", "--out_dir", str(out), "--overwrite", *extra_flags],
                          cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (work / "ours.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"our run failed:\n{done.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    history = read_history(out / "history.csv")
    evals = [(r["val_loss"], r["seconds"], int(r["step"])) for r in history if "val_loss" in r]
    return {"tokens_per_sec": metrics["tokens_per_sec"], "val_loss": metrics["val_loss"], "wall_seconds": wall,
            "evals": evals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanogpt", required=True, help="a nanoGPT checkout (git clone of karpathy/nanoGPT)")
    parser.add_argument("--ours_flags", default="", help="more flags for our run, e.g. \"--batch_size 48\"")
    args = parser.parse_args()
    checkout = Path(args.nanogpt).expanduser()
    if not (checkout / "train.py").is_file() or not (checkout / "config" / "train_shakespeare_char.py").is_file():
        raise SystemExit(f"error: {checkout} is not a nanoGPT checkout; clone karpathy/nanoGPT and pass its path.")
    with tempfile.TemporaryDirectory(prefix="nanogpt-bench-") as tmp:
        work = Path(tmp)
        theirs = run_nanogpt(checkout, work)
        theirs["val_loss"] = score_nanogpt_checkpoint(theirs["checkpoint"], theirs["meta"])
        ours = run_ours(work, args.ours_flags.split())
    print(f"{'':34s} {'nanoGPT':>10s} {'ours':>10s}")
    print(f"{'training tokens/s':34s} {theirs['tokens_per_sec']:10,.0f} {ours['tokens_per_sec']:10,.0f}")
    print(f"{'own val estimate at the end':34s} {theirs['own_val_loss']:10.4f} {ours['val_loss']:10.4f}")
    print(f"{'whole val split, same scorer':34s} {theirs['val_loss']:10.4f} {ours['val_loss']:10.4f}")
    print(f"{'wall seconds (with evals, startup)':34s} {theirs['wall_seconds']:10.1f} {ours['wall_seconds']:10.1f}")
    print(f"speed-up: {ours['tokens_per_sec'] / theirs['tokens_per_sec']:.2f}x tokens/s "
          f"(goal >= 1.5x at equal or lower val loss: {ours['val_loss'] <= theirs['val_loss'] + 1e-9})")
    reached = [(seconds, step) for loss, seconds, step in ours["evals"] if loss <= theirs["val_loss"]]
    if reached:
        seconds, step = reached[0]
        print(f"time to nanoGPT's final val loss ({theirs['val_loss']:.4f}, same scorer): ours {seconds:.1f} s "
              f"(step {step}), nanoGPT {theirs['train_seconds']:.1f} s (step 2000): "
              f"{theirs['train_seconds'] / seconds:.2f}x faster")


if __name__ == "__main__":
    main()
