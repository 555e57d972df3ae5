"""What the run object promises: records label the model that was trained, and a stage 6 random init
depends on its flags, never on what runs/ holds."""

import pytest

from shared.cli import UserError
from stage5_gpt import train as stage5_train
from stage6_finetune_cls import train as stage6_train

TINY_GPT = ["--preset", "tiny", "--max_steps", "4", "--eval_interval", "4", "--final_eval_tokens", "2000"]


def test_a_gpt_initialised_from_another_run_is_recorded_with_the_loaded_shape(tmp_path):
    stage5_train.main([*TINY_GPT, "--n_layer", "1", "--n_embd", "16", "--out_dir", str(tmp_path / "small")])
    record = stage5_train.main([*TINY_GPT, "--init_from", str(tmp_path / "small"), "--out_dir", str(tmp_path / "on")])
    assert record["model"].startswith("GPT 1L/2H/16d")  # not the preset's 2 layers of 32 dims


def test_stage6_random_init_takes_its_shape_from_the_flags_not_from_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/ is relative to where the command runs
    flags = ["--preset", "tiny", "--init_from", "random", "--max_steps", "2", "--eval_interval", "2"]
    with pytest.raises(UserError, match="no pretrained stage 5 model at runs/stage5_gpt/gutenberg_children-cpu "
                                        "to copy the shape of"):
        stage6_train.main([*flags, "--random_shape", "pretrained", "--out_dir", "nothing"])
    shaped = stage6_train.main([*flags, "--out_dir", "before"])
    # A storybook model of another shape where stage 6 looks for the pretrained one changes nothing.
    stage5_train.main([*TINY_GPT, "--n_layer", "1", "--n_embd", "16", "--out_dir",
                       "runs/stage5_gpt/gutenberg_children-cpu"])
    again = stage6_train.main([*flags, "--out_dir", "after"])
    assert shaped["shape"] == again["shape"] == "2L/2H/32d" and shaped["params"] == again["params"]
    assert shaped["test_accuracy"] == again["test_accuracy"]
    like = stage6_train.main([*flags, "--random_shape", "pretrained", "--out_dir", "like"])
    assert like["shape"] == "1L/2H/16d"  # asked for explicitly: the pretrained model's shape
