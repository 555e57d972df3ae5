"""Checkpoints: written atomically, read back with `weights_only=True`.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so loading it never
runs pickled code. Writing goes to a temporary file in the same folder and is renamed over the
target (`shared.runs.atomic_write`), so a crash, a kill or a full disk mid-write never leaves a
half-written checkpoint behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from shared.cli import UserError
from shared.runs import atomic_write


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable or not what the caller expected."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    path = Path(path)
    with atomic_write(path, binary=True) as fh:
        torch.save(state, fh)
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
    except PermissionError:
        raise CheckpointError(f"checkpoint {path} cannot be read: permission denied; give yourself read "
                              f"access (chmod u+r {path}) or ask its owner.") from None
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} is damaged or not a llm-stages checkpoint "
                              f"({type(err).__name__}); train the model again to replace it.") from None
    missing = [k for k in required if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}; it was not written by "
                              f"this stage's train command.")
    return state


def resume_checkpoint(run_dir: Path, required: tuple[str, ...] = ("model", "optimizer", "step", "rng"),
                      quiet: bool = False) -> tuple[Path, dict[str, Any]]:
    """The newest intact training checkpoint of a run folder: last.pt, or best.pt when last.pt is
    missing or damaged (a run killed while writing its first last.pt), or when best.pt is newer."""
    found: list[tuple[Path, dict[str, Any]]] = []
    problems = []
    for name in ("last.pt", "best.pt"):
        path = run_dir / name
        if not path.exists():
            problems.append(f"{name} is missing")
            continue
        try:
            found.append((path, load_checkpoint(path, required)))
        except CheckpointError as err:
            if "permission denied" in str(err):
                raise  # the file may be fine: never step around it
            problems.append(f"{name} is damaged")
    if not found and all(p.endswith("missing") for p in problems):
        raise CheckpointError(f"cannot resume: {run_dir} holds no checkpoint yet (no last.pt or best.pt); "
                              f"train it without --resume.")
    if not found:
        raise CheckpointError(f"cannot resume: {run_dir} holds no intact checkpoint ({' and '.join(problems)}); "
                              f"train it again without --resume (add --overwrite to replace what is there).")
    path, state = max(found, key=lambda item: item[1]["step"])
    if path.name != "last.pt" and not quiet:
        why = next((p for p in problems if p.startswith("last.pt")), "last.pt is older")
        print(f"resuming from {path} at step {state['step']}, the newest intact checkpoint ({why})")
    return path, state


def latest_run(stage: str, runs_dir: str | Path = "runs") -> Path:
    """The most recently trained run of a stage (for commands given no --checkpoint)."""
    runs = sorted(Path(runs_dir, stage).glob("*/best.pt"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise CheckpointError(f"no trained model in {Path(runs_dir, stage)}; train one first "
                              f"(python -m {stage}.train) or pass --checkpoint PATH.")
    return runs[-1].parent
