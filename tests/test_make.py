"""The Make targets a learner types: listed by `make help`, STAGE and ARGS passed through, bad input one line."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from shared import info

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def make(*args: str) -> subprocess.CompletedProcess:
    """make, with the install step taken as done (-o): it is not what these tests check, and where .venv is
    missing or older than pyproject.toml it would run pip (a minute or more, and the network)."""
    return subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_help_lists_every_target_with_one_line():
    targets = re.findall(r"^([a-z][a-z0-9-]*):", (REPO / "Makefile").read_text(), flags=re.M)
    shown = make("help").stdout
    for target in targets:
        assert re.search(rf"^  make {target}\s+\S", shown, flags=re.M), f"make help does not list {target}"


def test_train_and_generate_pass_stage_and_args():
    assert "-m stage5_gpt.train --preset tiny --max_steps 5" in make("-n", "train", "STAGE=5",
                                                                      "ARGS=--preset tiny --max_steps 5").stdout
    assert "-m stage4_transformer.translate" in make("-n", "generate", "STAGE=4").stdout
    assert "-m stage2_rnn_lstm.generate --prompt" in make("-n", "generate", "STAGE=2").stdout


@pytest.mark.parametrize("args", [["train"], ["train", "STAGE=9"], ["generate", "STAGE=x"]])
def test_a_missing_or_bad_stage_is_one_line(args):
    done = make(*args)
    assert done.returncode != 0 and "needs STAGE=1..7" in done.stdout


def test_info_reports_the_machine_and_the_data(capsys):
    report = info.main([])
    assert report["data sets"]["tinyshakespeare"] is True  # the offline mirror is found
    assert "device (--device auto)" in capsys.readouterr().out
