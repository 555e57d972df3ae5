"""Checks more than one stage's tests use."""

import torch

from shared.records import read_history


def first_and_last_train_loss(run_dir) -> tuple[float, float]:
    rows = read_history(run_dir / "history.csv")
    return rows[0]["train_loss"], rows[-1]["train_loss"]


def check_resume_equals_uninterrupted(train_main, tmp_path, *flags: str) -> None:
    """20 steps in one go == 10 steps, then --resume to 20: the same final weights.

    A constant learning rate, so the 10-step run is exactly the first half of the 20-step one.
    """
    flags = ["--preset", "tiny", "--eval_interval", "10", "--lr_schedule", "constant", "--warmup_steps", "0", *flags]
    train_main([*flags, "--out_dir", str(tmp_path / "whole"), "--max_steps", "20"])
    train_main([*flags, "--out_dir", str(tmp_path / "split"), "--max_steps", "10"])
    train_main([*flags, "--out_dir", str(tmp_path / "split"), "--max_steps", "20", "--resume"])
    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["model"]
    split = torch.load(tmp_path / "split" / "last.pt", weights_only=True)["model"]
    for key in whole:
        torch.testing.assert_close(whole[key], split[key], rtol=0, atol=1e-6)
