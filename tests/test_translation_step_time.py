"""bench/translation_step_time.py: times both translation stages through their own train.py, one run."""

import time

import pytest
from helpers import load_bench

BENCH = load_bench("translation_step_time")


def test_times_both_stages_and_writes_the_ratio(tmp_path):
    out = tmp_path / "steps.txt"
    started = time.perf_counter()
    result = BENCH.main(["--preset", "tiny", "--steps", "6", "--skip", "3", "--out", str(out)])
    wall_seconds = time.perf_counter() - started
    s3, s4 = result["stage3_s_per_step"], result["stage4_s_per_step"]
    assert 0 < 3 * (s3 + s4) < wall_seconds  # the 3 timed steps of each stage are a part of the bench's run
    text = out.read_text()
    assert f"stage 3 biGRU + attention: {s3:.3f} s/step" in text and f"stage 4 Transformer: {s4:.3f} s/step" in text
    assert f"ratio (stage 3 step / stage 4 step): {s3 / s4:.2f}" in text  # stage 3 over stage 4, not the inverse
    assert f"stage 4 cpu preset: {BENCH.preset_steps(BENCH.STAGE4_PRESETS['cpu']):,} steps" in text
    assert BENCH.preset_steps({"epochs": 3, "batch_size": 64}) == 1362  # stage 3's: 454 batches an epoch


def test_seconds_per_step_leaves_out_the_first_steps(tmp_path):
    """A stand-in train.py whose loop recorded 4.0 s at step 3 and 5.5 s at step 6: 0.5 s a step after the skip."""
    asked = []

    def train_main(argv):
        asked.append(argv)
        (tmp_path / "run").mkdir(exist_ok=True)
        (tmp_path / "run" / "history.csv").write_text("step,train_loss,seconds\n3,2.0,4.0\n6,1.5,5.5\n",
                                                      encoding="utf-8")
        return {"steps": 6}

    assert BENCH.seconds_per_step(train_main, "tiny", 6, 3, tmp_path / "run") == pytest.approx(0.5)
    flags = dict(zip(asked[0][::2], asked[0][1::2]))  # --flag value pairs
    assert (flags["--preset"], flags["--max_steps"], flags["--log_interval"]) == ("tiny", "6", "3")
    with pytest.raises(SystemExit, match="stopped before the timed steps ended"):
        BENCH.seconds_per_step(lambda argv: {"interrupted": True}, "tiny", 6, 3, tmp_path / "run")
