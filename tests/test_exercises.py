"""The exercises' commands are real commands, and every exercise has its place in the four docs."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from shared.cli import parse_config
from stage1_mlp.config import PRESETS as S1
from stage1_mlp.config import MLPConfig
from stage2_rnn_lstm.config import PRESETS as S2
from stage2_rnn_lstm.config import RNNTrainConfig
from stage3_attention_seq2seq.config import PRESETS as S3
from stage3_attention_seq2seq.config import Seq2SeqTrainConfig
from stage4_transformer.config import PRESETS as S4
from stage4_transformer.config import TransformerTrainConfig
from stage5_gpt.config import PRESETS as S5
from stage5_gpt.config import GPTTrainConfig
from stage6_finetune_cls.config import PRESETS as S6
from stage6_finetune_cls.config import FinetuneConfig

REPO = Path(__file__).resolve().parent.parent
CONFIGS = {"stage1_mlp.train": (MLPConfig, S1), "stage2_rnn_lstm.train": (RNNTrainConfig, S2),
           "stage3_attention_seq2seq.train": (Seq2SeqTrainConfig, S3),
           "stage4_transformer.train": (TransformerTrainConfig, S4), "stage5_gpt.train": (GPTTrainConfig, S5),
           "stage6_finetune_cls.train": (FinetuneConfig, S6)}


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_exercises", REPO / "bench" / "exercises.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


BENCH = load_bench()


@pytest.mark.parametrize("exercise", BENCH.EXERCISES, ids=lambda e: e.id)
def test_every_training_command_parses(exercise):
    """A typo in a flag would make a learner's command fail: each one is parsed as the stage parses it."""
    for run in exercise.runs:
        if run.module in CONFIGS:
            cls, presets = CONFIGS[run.module]
            parse_config(cls, presets, run.flags)
        else:  # an evaluate command reading another exercise's run
            assert run.after and BENCH.find(run.after)


def test_every_exercise_has_a_measured_block_in_each_doc():
    ids = [e.id for e in BENCH.EXERCISES]
    assert len(ids) == len(set(ids))
    for doc in BENCH.DOCS:
        text = doc.read_text(encoding="utf-8")
        blocks = re.findall(r"<!-- measured (E\d\.\d) -->\n.*?<!-- /measured -->", text, re.S)
        assert sorted(blocks) == sorted(ids), doc
