"""The exercises' commands are real commands, and every exercise has its place in the four docs."""

import re
from pathlib import Path

import pytest
from helpers import TRAIN_CONFIGS as CONFIGS
from helpers import load_bench

from shared.cli import parse_config

REPO = Path(__file__).resolve().parent.parent

BENCH = load_bench("exercises")


@pytest.mark.parametrize("exercise", BENCH.EXERCISES, ids=lambda e: e.id)
def test_every_training_command_parses(exercise):
    """A typo in a flag would make a learner's command fail: each one is parsed as the stage parses it."""
    for run in exercise.runs:
        if run.module in CONFIGS:
            cls, presets = CONFIGS[run.module]
            parse_config(cls, presets, BENCH.learner_command(run).split()[3:])
        else:  # an evaluate command reading another exercise's run
            assert run.after and BENCH.find(run.after)


def test_every_command_writes_its_own_run_folder():
    """Two commands of an exercise never share a folder, and none is a learner's default run folder;
    an evaluate command reads the folder its training command wrote."""
    folders = {}
    for exercise in BENCH.EXERCISES:
        for run in exercise.runs:
            words = BENCH.learner_command(run).split()
            module, flags = words[2], words[3:]
            if run.after:
                source = BENCH.find(run.after)
                cls, presets = CONFIGS[source.module]
                trained = parse_config(cls, presets, BENCH.learner_command(source).split()[3:])
                stage = source.module.split(".")[0]
                assert flags[flags.index("--checkpoint") + 1] == str(trained.run_dir(stage))
                continue
            cls, presets = CONFIGS[module]
            cfg = parse_config(cls, presets, flags)
            assert cfg.run_name.startswith("e") and cfg.run_name == BENCH.run_name(run)
            folder = cfg.run_dir(module.split(".")[0])
            assert folders.setdefault(folder, run.flags) == run.flags, f"{folder} holds two different runs"
    assert len(folders) > 40


def test_every_exercise_has_a_measured_block_in_each_doc():
    ids = [e.id for e in BENCH.EXERCISES]
    assert len(ids) == len(set(ids))
    for doc in BENCH.DOCS:
        text = doc.read_text(encoding="utf-8")
        blocks = re.findall(r"<!-- measured (E\d\.\d) -->\n.*?<!-- /measured -->", text, re.S)
        assert sorted(blocks) == sorted(ids), doc
