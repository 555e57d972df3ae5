"""How many Transformer steps fit in the time of stage 3's cpu preset? Both stages' steps timed in one run.

    python bench/translation_step_time.py                 # ~4 minutes on 2 CPU cores
    python bench/translation_step_time.py --steps 100 --rounds 2

Trains each stage's `cpu` preset (Multi30k en -> fr, batch 64) for a few steps through its own
`train.py`, one at a time, and reads the seconds the training loop recorded (evaluations excluded),
leaving out the first `--skip` steps (data loading, first allocations). Rounds alternate the stages so
that a machine that speeds up or slows down during the run weighs on both. It prints the seconds per
step of each, their ratio, and what that means for the stage 4 `cpu` preset: how long stage 3's 3
epochs take here, and what share of that time the Transformer's epochs take.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.records import read_history  # noqa: E402
from stage3_attention_seq2seq import train as stage3_train  # noqa: E402
from stage3_attention_seq2seq.config import PRESETS as STAGE3_PRESETS  # noqa: E402
from stage4_transformer import train as stage4_train  # noqa: E402
from stage4_transformer.config import PRESETS as STAGE4_PRESETS  # noqa: E402

TRAIN_PAIRS = 29_000  # Multi30k's training set
STAGES = {"stage 3 biGRU + attention": stage3_train, "stage 4 Transformer": stage4_train}


def seconds_per_step(main, preset: str, steps: int, skip: int, out_dir: Path) -> float:
    """Train `steps` steps of a preset; the loop's recorded seconds from step `skip` to the end, per step."""
    record = main(["--preset", preset, "--max_steps", str(steps), "--log_interval", str(skip),
                   "--eval_interval", str(steps), "--eval_pairs", "10", "--test_pairs", "10", "--beam_size", "1",
                   "--out_dir", str(out_dir), "--overwrite"])
    if record.get("interrupted"):
        raise SystemExit("translation_step_time: stopped before the timed steps ended; nothing was written")
    rows = {int(r["step"]): r["seconds"] for r in read_history(out_dir / "history.csv")}
    return (rows[steps] - rows[skip]) / (steps - skip)


def steps_per_epoch(batch_size: int) -> int:
    return -(-TRAIN_PAIRS // batch_size)


def preset_steps(preset: dict) -> int:
    """The optimizer steps a preset trains on Multi30k: its max_steps, or its epochs."""
    return preset.get("max_steps") or preset["epochs"] * steps_per_epoch(preset["batch_size"])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="steps per timed run")
    parser.add_argument("--skip", type=int, default=20, help="first steps left out of the timing")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds (stage 3, stage 4, ...)")
    parser.add_argument("--preset", choices=("cpu", "tiny"), default="cpu", help="tiny: the test's seconds-long check")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "translation_step_time_cpu.txt"))
    args = parser.parse_args(argv)
    if not 0 < args.skip < args.steps or args.steps % args.skip:
        parser.error("--skip must be above 0, below --steps, and divide it (the loop records every --skip steps)")
    timings: dict[str, list[float]] = {name: [] for name in STAGES}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, module in STAGES.items():
                out_dir = Path(tmp) / f"{module.STAGE}-{round_}"
                timings[name].append(seconds_per_step(module.main, args.preset, args.steps, args.skip, out_dir))
    s3, s4 = (statistics.mean(timings[name]) for name in STAGES)
    s3_steps, s4_steps = preset_steps(STAGE3_PRESETS["cpu"]), preset_steps(STAGE4_PRESETS["cpu"])
    s3_epoch, s4_epoch = (steps_per_epoch(p["cpu"]["batch_size"]) for p in (STAGE3_PRESETS, STAGE4_PRESETS))
    budget = s3_steps * s3
    lines = [
        f"# Seconds per training step, {args.preset} presets, Multi30k en -> fr ({time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()} CPU x{os.cpu_count()})",
        f"python bench/translation_step_time.py --preset {args.preset} --steps {args.steps} --skip {args.skip} "
        f"--rounds {args.rounds}",
        "",
        *(f"{name}: {statistics.mean(t):.3f} s/step (rounds: {', '.join(f'{x:.3f}' for x in t)})"
          for name, t in timings.items()),
        f"ratio (stage 3 step / stage 4 step): {s3 / s4:.2f}",
        f"stage 3 cpu preset: {s3_steps:,} steps ({s3_steps / s3_epoch:g} epochs) = {budget / 60:.1f} min of training "
        "here",
        f"in that time the Transformer takes {budget / s4:,.0f} steps ({budget / s4 / s4_epoch:.1f} epochs)",
        f"stage 4 cpu preset: {s4_steps:,} steps ({s4_steps / s4_epoch:g} epochs) = {s4_steps * s4 / 60:.1f} min here, "
        f"{100 * s4_steps * s4 / budget:.0f}% of stage 3's time",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return {"stage3_s_per_step": s3, "stage4_s_per_step": s4, "ratio": s3 / s4,
            "stage4_share_of_stage3_time": s4_steps * s4 / budget, "timings": timings}


if __name__ == "__main__":
    main()
