"""Checkpoints: written atomically, read back with `weights_only=True`.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so loading it never
runs pickled code. Writing goes to a temporary file in the same folder and is renamed over the
target, so a crash (or Ctrl-C) mid-write never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from shared.cli import UserError


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable or not what the caller expected."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, required: tuple[str, ...] = ("model",)) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt" if (path / "best.pt").exists() else path / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train a model first or pass the path "
                              f"of an existing .pt file.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a llm-stages checkpoint "
                              f"({type(err).__name__}); delete it and train again.") from None
    missing = [k for k in required if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}; it was not written by "
                              f"this stage's train command.")
    return state


def latest_run(stage: str, runs_dir: str | Path = "runs") -> Path:
    """The most recently trained run of a stage (for commands given no --checkpoint)."""
    runs = sorted(Path(runs_dir, stage).glob("*/best.pt"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise CheckpointError(f"no trained model in {Path(runs_dir, stage)}; train one first "
                              f"(python -m {stage}.train) or pass --checkpoint PATH.")
    return runs[-1].parent
