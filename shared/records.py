"""Run records: every train run writes `runs/<stage>/<run-name>/` with

    config.json    the full config (every flag), enough to rerun it
    history.csv    one row per log/eval step: step, epoch, lr, train_loss, val_* ...
    metrics.json   final metrics, params, device, wall time, throughput, git commit, command
    curves.png     the training curves

`python -m shared.report` reads the metrics.json files back into comparison tables.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.cli import UserError
from shared.data_registry import REPO_ROOT
from shared.runs import atomic_write

if TYPE_CHECKING:
    import pandas as pd


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename), so a crash never leaves half a file."""
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False, default=str)
        fh.write("\n")


def write_results(path: Path, obj: Any) -> None:
    """Save an evaluate command's results, after it printed them: when the folder cannot be written
    (read-only, disk full) the printed numbers still stand and the sentence says what was not saved."""
    try:
        write_json(path, obj)
    except UserError as err:
        raise UserError(f"the results above were printed but not saved: {err}") from None


def write_history(path: Path, history: Sequence[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    with atomic_write(path) as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


def read_history(path: Path) -> list[dict[str, float]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


def read_history_frame(path: Path) -> pd.DataFrame:
    """history.csv as a pandas DataFrame, one row per logged step, one column per value. A value a row did
    not log is NaN (log rows have train_loss, evaluation rows val_*): pick rows with, e.g.,
    `history.dropna(subset=["val_loss"])`, then plot `rows["step"]` against `rows["val_loss"]`."""
    import pandas as pd  # here, not at the top: pandas takes a while to import and training never needs it

    return pd.read_csv(path, float_precision="round_trip")  # round_trip: each float exactly as it was written


def plot_history(path: Path, history: Sequence[dict[str, Any]], title: str) -> None:
    """Loss curves (train and val) and, when recorded, the validation accuracy."""
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's (e.g. a notebook's) backend alone

    train = [(r["step"], r["train_loss"]) for r in history if "train_loss" in r]
    val = [(r["step"], r["val_loss"]) for r in history if "val_loss" in r]
    acc = [(r["step"], r["val_accuracy"]) for r in history if "val_accuracy" in r]
    fig = Figure(figsize=(10 if acc else 6, 4))
    axes = fig.subplots(1, 2 if acc else 1, squeeze=False)
    ax = axes[0][0]
    if train:
        ax.plot(*zip(*train), label="train", alpha=0.8)
    if val:
        ax.plot(*zip(*val), "o-", label="val")
    ax.set(xlabel="step", ylabel="loss", title=title)
    ax.legend()
    if acc:
        axes[0][1].plot(*zip(*acc), "o-", color="tab:green")
        axes[0][1].set(xlabel="step", ylabel="val accuracy")
    fig.tight_layout()
    with atomic_write(path, binary=True) as fh:
        fig.savefig(fh, format="png", dpi=100)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def command_for(module: str, argv: Sequence[str] | None) -> str:
    """The command that reproduces a run: `python -m <module> <flags>`."""
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])


def machine_description(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0)
    from shared.devices import cpu_bf16_features, cpu_model

    features = cpu_bf16_features()
    return f"{cpu_model()} x{os.cpu_count()}" + (f" ({', '.join(features)})" if features else "")


# The run record's schema: what every metrics.json holds (shared.report groups and labels runs by
# these), then each task's scores. Written by shared.run.Run.record (and the sklearn baseline).
RECORD_FIELDS = ("stage", "task", "model", "dataset", "preset", "params", "device", "train_seconds", "command")


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """metrics.json: the caller's metrics plus when, where and by which commit/command it ran."""
    missing = [key for key in RECORD_FIELDS if key not in metrics]
    if missing:
        raise ValueError(f"a run record needs {', '.join(missing)}")  # a programming error, not the user's
    record = {
        **metrics,
        "run": run_dir.name,
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": machine_description(str(metrics.get("device", "cpu"))),
    }
    write_json(run_dir / "metrics.json", record)
    return record
