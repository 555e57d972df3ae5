"""Does every comparison the READMEs promise hold on this machine? The quick version of each, measured.

    python bench/course_claims.py                       # every claim; writes bench/results/course_claims_cpu.md
    python bench/course_claims.py --only stage4_vs_stage3 --no_train   # one claim, from runs already there

Each claim names the runs on both sides (the commands `make demo` and the stage READMEs give), the
number compared (from each run's metrics.json) and which way it must point. A run already in runs/
is reused (its date is printed) unless --fresh; a missing one is trained here, one at a time (two
trainings at once on 2 cores slow each other many times over). From nothing: about 40 minutes on 2 CPU
cores, plus `make pretrain` for stage 6; after `make demo`, a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Side:
    """One side of a claim: a stage's training command, run under `name` (one run per seed)."""

    label: str
    module: str
    args: tuple[str, ...]
    name: str
    seeds: tuple[int, ...] = (1337,)

    def run_dir(self, seed: int) -> Path:
        stage = self.module.split(".")[0]
        return ROOT / "runs" / stage / (self.name if seed == 1337 else f"{self.name}-s{seed}")

    def command(self, seed: int) -> list[str]:
        name = self.run_dir(seed).name
        return [sys.executable, "-m", self.module, *self.args, "--seed", str(seed), "--run_name", name, "--overwrite"]


@dataclass(frozen=True)
class Claim:
    key: str
    says: str  # the sentence a README promises, shortened
    where: str  # the README that says it
    metric: str  # a key of metrics.json
    unit: str
    better: str  # "higher" or "lower"
    winner: Side  # the side the README says comes out ahead
    other: Side
    needs: str = ""  # a run directory that must exist first (and how to make it)
    scale: float = 1.0  # 100 for accuracies, shown in percent


DEMO_STAGE3 = ("--preset", "cpu", "--max_steps", "200", "--beam_size", "3")
# A Transformer step takes 0.6 of a GRU step on 2 cores (1.13 s against 1.86 s, measured in make demo),
# so the same minutes are 320 Transformer steps against 200: counted in steps, a slower machine prints the
# same numbers, only later. The schedule of the search in the stage 4 README (1/sqrt after 100 warmup
# steps, one evaluation at the end), not the cpu preset's cosine over 4.5 epochs.
DEMO_STAGE4 = ("--preset", "cpu", "--max_steps", "320", "--lr_schedule", "inverse_sqrt", "--warmup_steps", "100",
               "--eval_interval", "0", "--average_last", "1", "--beam_size", "3")
LAST_BLOCK_SMS = ("--task", "sms_spam", "--trainable", "last_block")
SEEDS = (1337, 1, 2)

CLAIMS = [
    Claim("stage5_vs_stage2", "stage 5's GPT (cpu preset, about a minute) ends lower than stage 2's LSTM after "
          "make demo's 300 steps (about 3 minutes), on the same validation text",
          "README.md (stage 5)", "val_loss", "nats/char", "lower",
          Side("GPT, cpu preset", "stage5_gpt.train", ("--preset", "cpu"), "tinyshakespeare-cpu"),
          Side("LSTM, 300 steps", "stage2_rnn_lstm.train", ("--max_steps", "300", "--eval_interval", "100"),
               "tinyshakespeare-lstm-quick")),
    Claim("attention_vs_none", "attention beats the fixed-vector encoder-decoder after the same 200 steps",
          "stage3_attention_seq2seq/README.md", "test_bleu", "sacreBLEU", "higher",
          Side("biGRU + attention", "stage3_attention_seq2seq.train", DEMO_STAGE3, "multi30k-en-fr-quick"),
          Side("biGRU, no attention", "stage3_attention_seq2seq.train", (*DEMO_STAGE3, "--attention_type", "none"),
               "multi30k-en-fr-quick-none")),
    Claim("stage4_vs_stage3", "the Transformer beats the attention RNN in the same minutes (make demo: 320 "
          "Transformer steps, 200 GRU steps)",
          "README.md (stage 4)", "test_bleu", "sacreBLEU", "higher",
          Side("Transformer", "stage4_transformer.train", DEMO_STAGE4, "multi30k-en-fr-quick"),
          Side("biGRU + attention", "stage3_attention_seq2seq.train", DEMO_STAGE3, "multi30k-en-fr-quick")),
    Claim("pretrained_vs_random", "the storybook GPT's weights beat random ones, last block trained, SMS spam "
          "(3 seeds)", "stage6_finetune_cls/README.md", "test_accuracy", "points", "higher",
          Side("pretrained", "stage6_finetune_cls.train", (*LAST_BLOCK_SMS, "--init_from", "pretrained"),
               "pretrained-last_block-cpu", SEEDS),
          Side("random", "stage6_finetune_cls.train", (*LAST_BLOCK_SMS, "--init_from", "random"),
               "random-last_block-cpu", SEEDS),
          needs="runs/stage5_gpt/gutenberg_children-cpu (make pretrain, about 30 minutes)", scale=100),
]
KV_CACHE_SAYS = "the KV cache makes generation at least 5x faster (GPT-2 124M shape, 300 new tokens)"


def side_value(side: Side, metric: str, scale: float, train: bool, fresh: bool) -> tuple[float | None, str]:
    """The metric averaged over the side's seeds, and where it came from. None when a run is missing."""
    values, notes, seconds, steps = [], [], [], []
    for seed in side.seeds:
        metrics_path = side.run_dir(seed) / "metrics.json"
        if fresh or not metrics_path.exists():
            if not train:
                return None, f"no run at {metrics_path.parent.relative_to(ROOT)} (run without --no_train)"
            print("  running:", " ".join(side.command(seed)[1:]), flush=True)
            started = time.time()
            done = subprocess.run(side.command(seed), cwd=ROOT, stdout=subprocess.DEVNULL)
            if done.returncode != 0 or not metrics_path.exists():
                return None, f"`python -m {side.module}` failed (exit {done.returncode})"
            notes.append(f"ran now, {time.time() - started:.0f} s")
        else:
            notes.append("reused")
        metrics = json.loads(metrics_path.read_text())
        values.append(scale * float(metrics[metric]))
        seconds.append(metrics.get("train_seconds") or 0.0)
        steps.append(metrics.get("steps") or 0)
        if notes[-1] == "reused":
            notes[-1] = f"reused, {metrics.get('date', '?')[:10]}"
    spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    where_from = (f"{statistics.mean(steps):.0f} steps, {statistics.mean(seconds):.0f} s of training; "
                  f"{'; '.join(sorted(set(notes)))}")
    return statistics.mean(values), f"{statistics.mean(values):.4g}{spread} ({where_from})"


def check_claim(claim: Claim, train: bool, fresh: bool) -> dict:
    if claim.needs and not (ROOT / claim.needs.split(" ")[0]).exists():
        return {"claim": claim, "a": None, "b": None, "a_note": f"needs {claim.needs}", "b_note": "", "holds": None}
    a, a_note = side_value(claim.winner, claim.metric, claim.scale, train, fresh)
    b, b_note = side_value(claim.other, claim.metric, claim.scale, train, fresh)
    holds = None if a is None or b is None else (a > b if claim.better == "higher" else a < b)
    return {"claim": claim, "a": a, "b": b, "a_note": a_note, "b_note": b_note, "holds": holds}


def kv_cache_row(new_tokens: int = 300) -> dict:
    """Times GPT-2 124M (random weights) generating with and without the cache (bench/stage5_kv_cache.py)."""
    import torch

    sys.path.insert(0, str(ROOT / "bench"))
    from stage5_kv_cache import time_generation

    from stage5_gpt.config import PRESETS, GPTTrainConfig
    from stage5_gpt.model import GPT

    torch.manual_seed(0)
    model = GPT(GPTTrainConfig(**PRESETS["gpt2"]).model_config(50304)).eval()
    prompt = torch.randint(0, 50257, (1, 10))
    time_generation(model, prompt, 5, True)  # warm-up
    cached, _ = time_generation(model, prompt, new_tokens, True)
    uncached, _ = time_generation(model, prompt, new_tokens, False)
    speedup = uncached / cached
    return {"says": KV_CACHE_SAYS, "where": "stage5_gpt/README.md", "a": f"{new_tokens / cached:.1f} tokens/s on",
            "b": f"{new_tokens / uncached:.1f} tokens/s off", "gap": f"{speedup:.1f}x", "holds": speedup >= 5}


def row_of(result: dict) -> dict:
    claim = result["claim"]
    gap = "" if result["holds"] is None else f"{result['a'] - result['b']:+.3g} {claim.unit}"
    return {"says": claim.says, "where": claim.where, "a": f"{claim.winner.label}: {result['a_note']}",
            "b": f"{claim.other.label}: {result['b_note']}", "gap": gap, "holds": result["holds"]}


def verdict(holds: bool | None) -> str:
    return {True: "holds", False: "does not hold", None: "not measured"}[holds]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    keys = [c.key for c in CLAIMS] + ["kv_cache"]
    parser.add_argument("--only", nargs="+", choices=keys, default=keys, help="the claims to check")
    parser.add_argument("--fresh", action="store_true", help="train every run again, even when it is in runs/")
    parser.add_argument("--no_train", action="store_true", help="only read runs already there")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a claim does not hold")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the table here (default: bench/results/course_claims_cpu.md when every claim runs)")
    args = parser.parse_args(argv)
    rows = []
    for claim in CLAIMS:
        if claim.key in args.only:
            print(f"{claim.key}: {claim.says}", flush=True)
            rows.append(row_of(check_claim(claim, not args.no_train, args.fresh)))
            print(f"  {verdict(rows[-1]['holds'])}: {rows[-1]['a']} vs {rows[-1]['b']}", flush=True)
    if "kv_cache" in args.only:
        print(f"kv_cache: {KV_CACHE_SAYS}", flush=True)
        rows.append(kv_cache_row())
        print(f"  {verdict(rows[-1]['holds'])}: {rows[-1]['a']} vs {rows[-1]['b']} ({rows[-1]['gap']})", flush=True)
    out = args.out or (ROOT / "bench/results/course_claims_cpu.md" if len(args.only) == len(keys) else None)
    if out is not None:
        lines = [f"`python bench/course_claims.py` on {platform.machine()}, {os.cpu_count()} CPU cores, "
                 f"{time.strftime('%Y-%m-%d')}. Each side: its number, then whether its run was trained now or "
                 "reused from runs/ (and its date).", ""]
        lines += ["| the course says | where | ahead (should be) | behind | gap | on this machine |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['says']} | {r['where']} | {r['a']} | {r['b']} | {r['gap']} | **{verdict(r['holds'])}** |"
                  for r in rows]
        out.write_text("\n".join(lines) + "\n")
        print(f"wrote {out}")
    return 1 if args.strict and any(r["holds"] is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
