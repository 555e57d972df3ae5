"""What this machine has for the course: `python -m shared.info` (or `make info`).

Python and PyTorch versions, the device and preset `--device auto` picks, where the data is looked
for and which data sets are there (found, not yet checksummed: that happens on first use), where
GPT-2's BPE files are read from, and the runs recorded so far. Nothing is trained or downloaded.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from shared.data_registry import REGISTRY, REPO_ROOT, data_roots


def found(path: str) -> Path | None:
    for root in data_roots():
        if (root / path).exists():
            return root / path
    return None


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    import argparse

    from shared.devices import resolve_device

    argparse.ArgumentParser(prog="python -m shared.info", description=__doc__.splitlines()[0]).parse_args(argv)
    device = resolve_device("auto")
    gpu = f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""
    lines = {
        "python": f"{platform.python_version()} ({sys.executable})",
        "torch": f"{torch.__version__}, {torch.get_num_threads()} CPU threads",
        "device (--device auto)": f"{device}{gpu}",
        "preset chosen when none is given": "gpu" if device.type == "cuda" else "cpu",
        "data looked for in": "  >  ".join(f"{root}{'' if root.exists() else ' (missing)'}" for root in data_roots()),
        "GPT-2 BPE files (TIKTOKEN_CACHE_DIR)": os.environ.get("TIKTOKEN_CACHE_DIR", "not set: set on first use"),
    }
    for key, value in lines.items():
        print(f"{key:38s} {value}")
    print("data sets:")
    status = {}
    for name, info in REGISTRY.items():
        missing = [f.path for f in info.files.values() if not any(found(p) for p, _ in f.forms())]
        status[name] = not missing
        shown = "ok" if not missing else f"missing {len(missing)} of {len(info.files)} files (first: {missing[0]})"
        print(f"  {name:22s} {shown}")
    runs = REPO_ROOT / "runs"
    print("runs recorded:")
    for stage in sorted(runs.glob("stage*")) if runs.exists() else []:
        done = sorted(p.parent.name for p in stage.glob("*/metrics.json"))
        print(f"  {stage.name:26s} {len(done):3d}" + (f"  ({', '.join(done[:4])}{', ...' if len(done) > 4 else ''})"
                                                     if done else ""))
    return {**lines, "data sets": status}


if __name__ == "__main__":
    main()
