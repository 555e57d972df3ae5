"""RNN vs GRU vs LSTM at equal parameter count and equal steps, char level on Tiny Shakespeare.

    python bench/stage2_cells.py [--params 850000] [--steps 1500]

An LSTM has 4 weight blocks per layer, a GRU 3, a vanilla RNN 1; for the same number of parameters
the GRU and the RNN get wider hidden states. Each run is the `cpu` preset (2 layers, batch 32,
sequences of 100) with only --model_type, --hidden_size and --max_steps changed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stage2_rnn_lstm.model import GATES  # noqa: E402

VOCAB, EMBED, LAYERS = 69, 64, 2  # Tiny Shakespeare's characters + 4 specials; the cpu preset's embedding


def parameter_count(cell: str, hidden: int) -> int:
    g = GATES[cell] * hidden
    recurrent = g * (EMBED + hidden) + 2 * g + (LAYERS - 1) * (g * 2 * hidden + 2 * g)
    return VOCAB * EMBED + recurrent + hidden * VOCAB + VOCAB


def hidden_for(cell: str, params: int) -> int:
    return min(range(8, 4096), key=lambda h: abs(parameter_count(cell, h) - params))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=int, default=878_000, help="parameters per model (LSTM 2 x 256: 878k)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--runs_dir", default="runs")
    args = parser.parse_args()
    rows = []
    for cell in ["rnn", "gru", "lstm"]:
        hidden = hidden_for(cell, args.params)
        out = Path(args.runs_dir) / "stage2_rnn_lstm" / f"tinyshakespeare-{cell}-equal-params"
        cmd = [sys.executable, "-m", "stage2_rnn_lstm.train", "--preset", "cpu", "--model_type", cell,
               "--hidden_size", str(hidden), "--max_steps", str(args.steps), "--eval_interval", "500",
               "--out_dir", str(out), "--overwrite"]
        print("$", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
        m = json.loads((out / "metrics.json").read_text())
        rows.append((cell, hidden, m["params"], m["val_loss"], m["val_bits_per_char"], m["train_seconds"],
                     m["tokens_per_sec"]))
    print(f"\n{args.steps} steps of 32 x 100 characters each, 2 layers, ~{args.params:,} parameters:\n")
    print("| cell | hidden | params | val loss (nats/char) | val bits/char | train s | chars/s |")
    print("|---|---|---|---|---|---|---|")
    for cell, hidden, params, loss, bpc, seconds, speed in rows:
        print(f"| {cell.upper()} | {hidden} | {params:,} | {loss:.3f} | {bpc:.3f} | {seconds:.0f} | {speed:,} |")


if __name__ == "__main__":
    main()
