"""bench/course_claims.py: its commands parse, and its verdicts follow the numbers in the runs it reads."""

import json

import pytest
from helpers import TRAIN_CONFIGS, load_bench

from shared.cli import parse_config

BENCH = load_bench("course_claims")


@pytest.mark.parametrize("claim", BENCH.CLAIMS, ids=lambda c: c.key)
def test_every_claim_command_parses(claim):
    for side in (claim.winner, claim.other):
        config_class, presets = TRAIN_CONFIGS[side.module]
        cfg = parse_config(config_class, presets, list(side.command(1)[3:]), prog=side.module)
        assert cfg.seed == 1 and cfg.run_name == side.run_dir(1).name == f"{side.name}-s1"


def test_verdicts_follow_the_recorded_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(BENCH, "ROOT", tmp_path)
    claim = next(c for c in BENCH.CLAIMS if c.key == "stage4_vs_stage3")

    def record(side, bleu):
        side.run_dir(1337).mkdir(parents=True)
        (side.run_dir(1337) / "metrics.json").write_text(json.dumps({"test_bleu": bleu, "date": "2026-11-30T08:00"}))

    assert BENCH.check_claim(claim, train=False, fresh=False)["holds"] is None  # no runs: not measured
    record(claim.winner, 14.0)
    record(claim.other, 12.5)
    row = BENCH.row_of(BENCH.check_claim(claim, train=False, fresh=False))
    assert row["holds"] is True and row["gap"] == "+1.5 sacreBLEU"
    assert "14 (0 steps, 0 s of training; reused, 2026-11-30)" in row["a"]
    (claim.winner.run_dir(1337) / "metrics.json").write_text(json.dumps({"test_bleu": 11.0}))
    assert BENCH.check_claim(claim, train=False, fresh=False)["holds"] is False
    out = tmp_path / "claims.md"
    assert BENCH.main(["--only", "stage4_vs_stage3", "--no_train", "--out", str(out)]) == 0
    assert BENCH.main(["--only", "stage4_vs_stage3", "--no_train", "--strict"]) == 1
    assert "**does not hold**" in out.read_text() and "does not hold" in capsys.readouterr().out
