from dataclasses import dataclass
from typing import Literal

import pytest
from test_robustness import refused_flag

from shared.cli import UserError, check, parse_config
from shared.train import TrainConfig
from stage1_mlp import train as stage1_train


@dataclass(frozen=True)
class Toy:
    preset: str = "cpu"
    batch_size: int = 8
    lr: float = 0.1
    mode: Literal["a", "b"] = "a"
    compile: bool = False

    def __post_init__(self):
        check(self.batch_size >= 1, "--batch_size must be at least 1")


PRESETS = {"cpu": {"batch_size": 16}, "tiny": {"batch_size": 2, "lr": 0.5}}


def test_preset_then_flags():
    assert parse_config(Toy, PRESETS, []).batch_size == 16
    cfg = parse_config(Toy, PRESETS, ["--preset", "tiny", "--lr", "0.25", "--compile", "--mode", "b"])
    assert (cfg.preset, cfg.batch_size, cfg.lr, cfg.mode, cfg.compile) == ("tiny", 2, 0.25, "b", True)


def test_preset_tables_by_field_value_apply_before_the_flags():
    presets = {"cpu": {"batch_size": 16, "by_mode": {"b": {"batch_size": 4, "lr": 0.3}}}}
    assert parse_config(Toy, presets, []).batch_size == 16  # mode a: no table entry
    cfg = parse_config(Toy, presets, ["--mode", "b"])
    assert (cfg.batch_size, cfg.lr) == (4, 0.3)
    assert parse_config(Toy, presets, ["--mode", "b", "--lr", "0.7"]).lr == 0.7  # an explicit flag wins


def test_an_explicit_epochs_flag_wins_over_a_presets_step_count():
    presets = {"cpu": {"max_steps": 2043, "epochs": 1}}
    assert parse_config(TrainConfig, presets, []).max_steps == 2043
    cfg = parse_config(TrainConfig, presets, ["--epochs", "2"])
    assert (cfg.epochs, cfg.max_steps) == (2, 0)  # 2 epochs, not the preset's 2,043 steps
    assert parse_config(TrainConfig, presets, ["--epochs", "2", "--max_steps", "10"]).max_steps == 10


@pytest.mark.parametrize("argv, fragment", [
    (["--bogus", "1"], "unknown flag(s): --bogus 1"),
    (["--batch_size", "x"], "--batch_size takes an integer, not 'x'"),
    (["--batch_size", "0"], "--batch_size must be at least 1"),
    (["--mode", "c"], "invalid choice: 'c'"),
    (["--preset", "huge"], "invalid choice: 'huge'"),
])
def test_bad_flags_exit_2_with_one_sentence(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(Toy, PRESETS, argv, prog="toy")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert err.count("\n") == 1 and "usage:" not in err


def test_config_error_is_a_value_error_and_a_user_error():
    with pytest.raises(ValueError, match="--batch_size must be at least 1") as raised:  # code catching ValueError
        Toy(batch_size=0)
    assert isinstance(raised.value, UserError)  # and run_main prints it as one sentence


def test_a_stages_unknown_flag_is_one_line(capsys):
    refused_flag(stage1_train.main, ["--no_such_flag"], "unknown flag(s): --no_such_flag", capsys)


@dataclass(frozen=True)
class _Message:
    text: str = ""
    checkpoint: str = ""
    beam_size: int = 1
    fast: bool = True


@pytest.mark.parametrize("argv", [
    ["hello there", "--checkpoint", "run"],
    ["--checkpoint", "run", "hello there"],
    ["--fast", "--checkpoint", "run", "hello there", "--beam_size", "3"],
    ["--no-fast", "hello there", "--checkpoint=run"],
])
def test_the_main_text_may_come_before_or_after_the_flags(argv):
    from shared.cli import first_positional_as

    raw = first_positional_as("--text", argv, _Message)
    assert raw[:2] == ["--text", "hello there"] and sorted(raw[2:]) == sorted(a for a in argv if a != "hello there")
    assert first_positional_as("--text", ["--checkpoint", "run"], _Message) == ["--checkpoint", "run"]  # no text


def test_ctrl_c_inside_an_import_is_the_same_clean_stop(capsys):
    """Ctrl-C while a C extension initialises (pandas, at the end of a run) surfaces as that import's
    error, with the KeyboardInterrupt only in its context: still one sentence and exit 130."""
    import pytest

    from shared.cli import run_main

    def main(argv):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemError("returned a result with an exception set")  # noqa: B904  (as CPython chains it)

    with pytest.raises(SystemExit) as stop:
        run_main(main, [])
    assert stop.value.code == 130 and "interrupted; files already written are kept" in capsys.readouterr().err
    with pytest.raises(SystemError):  # a real error with no Ctrl-C behind it still shows as itself
        run_main(lambda argv: (_ for _ in ()).throw(SystemError("boom")), [])
