"""Resume equals uninterrupted for the options that keep state beside the weights."""

import torch

from stage4_transformer import train as stage4_train


def test_stage4_checkpoint_averaging_resumed_in_the_middle_ends_like_an_uninterrupted_run(tmp_path):
    """--average_last 3 keeps the weights of the last 3 evaluations; they travel in the checkpoint, so a
    run stopped at step 12 and resumed averages the same weights as one that never stopped."""
    flags = ["--preset", "tiny", "--max_train_pairs", "300", "--eval_interval", "4", "--average_last", "3",
             "--lr_schedule", "constant", "--warmup_steps", "0", "--test_pairs", "20", "--eval_pairs", "20"]
    whole = stage4_train.main([*flags, "--max_steps", "20", "--out_dir", str(tmp_path / "whole")])
    stage4_train.main([*flags, "--max_steps", "12", "--out_dir", str(tmp_path / "split")])
    split = stage4_train.main([*flags, "--max_steps", "20", "--resume", "--out_dir", str(tmp_path / "split")])
    states = [torch.load(tmp_path / run / "last.pt", weights_only=True) for run in ("whole", "split")]
    assert [len(s["recent_weights"]) for s in states] == [3, 3]  # what the averaging at the end reads
    for mine, theirs in zip(states[0]["recent_weights"], states[1]["recent_weights"]):
        for key in mine:
            torch.testing.assert_close(mine[key], theirs[key], rtol=0, atol=1e-6)
    for key in states[0]["model"]:
        torch.testing.assert_close(states[0]["model"][key], states[1]["model"][key], rtol=0, atol=1e-6)
    assert split["checkpoint_average"] == whole["checkpoint_average"]
    assert split["test_bleu"] == whole["test_bleu"] and split["test_bleu_beam"] == whole["test_bleu_beam"]
