"""bench/translation_step_time.py: times both translation stages through their own train.py, one run."""

from helpers import load_bench

BENCH = load_bench("translation_step_time")


def test_times_both_stages_and_writes_the_ratio(tmp_path):
    out = tmp_path / "steps.txt"
    result = BENCH.main(["--preset", "tiny", "--steps", "6", "--skip", "3", "--out", str(out)])
    assert result["stage3_s_per_step"] > 0 and result["stage4_s_per_step"] > 0
    assert result["ratio"] == result["stage3_s_per_step"] / result["stage4_s_per_step"]
    text = out.read_text()
    assert f"ratio (stage 3 step / stage 4 step): {result['ratio']:.2f}" in text
    assert f"stage 4 cpu preset: {BENCH.preset_steps(BENCH.STAGE4_PRESETS['cpu']):,} steps" in text
    assert BENCH.preset_steps({"epochs": 3, "batch_size": 64}) == 1362  # stage 3's: 454 batches an epoch
