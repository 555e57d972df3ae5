"""Stage 1 targets: the `cpu` preset on SST-2 and TREC over several seeds, plus the sklearn baseline.

    python bench/stage1_targets.py [--seeds 1337 1 2 3 4] [--datasets sst2 trec]

Each run is a real `python -m stage1_mlp.train` run recorded under runs/stage1_mlp/; this script
prints held-out accuracy (mean ± std over seeds), training seconds, and whether each target is met.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

TARGETS = {"sst2": 0.830, "trec": 0.900, "ag_news": 0.925}
TRAIN_BUDGET_S = 180


def run(args: list[str]) -> dict:
    import json
    from pathlib import Path

    out = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{out.stderr[-2000:]}")
    run_dir = next(line.rsplit("-> ", 1)[1] for line in out.stdout.splitlines() if "-> " in line)
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337, 1, 2, 3, 4])
    parser.add_argument("--datasets", nargs="+", default=["sst2", "trec"], choices=list(TARGETS))
    args = parser.parse_args()
    print("| data set | model | held-out accuracy | seeds | train s (max) | target | met |")
    print("|---|---|---|---|---|---|---|")
    for dataset in args.datasets:
        start = time.perf_counter()
        records = [run(["stage1_mlp.train", "--dataset", dataset, "--preset", "cpu", "--seed", str(s), "--overwrite"])
                   for s in args.seeds]
        accs = [r["test_accuracy"] for r in records]
        mean = statistics.fmean(accs)
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        slowest = max(r["train_seconds"] for r in records)
        met = mean >= TARGETS[dataset] and slowest <= TRAIN_BUDGET_S
        print(f"| {dataset} | MLP (cpu preset) | {100 * mean:.2f} ± {100 * std:.2f} "
              f"({', '.join(f'{100 * a:.1f}' for a in accs)}) | {len(accs)} | {slowest:.1f} | "
              f">= {100 * TARGETS[dataset]:.1f} | {'yes' if met else 'NO'} |", flush=True)
        base = run(["stage1_mlp.baseline", "--dataset", dataset])
        print(f"| {dataset} | TF-IDF + logistic regression | {100 * base['test_accuracy']:.2f} | 1 | "
              f"{base['train_seconds']:.1f} | | |", flush=True)
        print(f"<!-- {dataset}: {time.perf_counter() - start:.0f} s wall in all -->", flush=True)


if __name__ == "__main__":
    main()
