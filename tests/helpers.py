"""Checks more than one stage's tests use."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import torch

from shared.records import read_history
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
from stage7_instruct.config import DPO_PRESETS, SFT_PRESETS, DPOConfig, SFTConfig

# Each stage's train module, its config class and presets: commands written in docs and benches parse with these.
TRAIN_CONFIGS = {"stage1_mlp.train": (MLPConfig, S1), "stage2_rnn_lstm.train": (RNNTrainConfig, S2),
                 "stage3_attention_seq2seq.train": (Seq2SeqTrainConfig, S3),
                 "stage4_transformer.train": (TransformerTrainConfig, S4), "stage5_gpt.train": (GPTTrainConfig, S5),
                 "stage6_finetune_cls.train": (FinetuneConfig, S6), "stage7_instruct.train": (SFTConfig, SFT_PRESETS),
                 "stage7_instruct.dpo": (DPOConfig, DPO_PRESETS)}


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


def check_memorises_fifty_pairs(model_for, cfg, lr: float, steps: int = 150) -> None:
    """A translation model trained on 50 Multi30k pairs translates them back nearly perfectly (BLEU > 90).

    model_for(src_vocab_size, tgt_vocab_size) builds the model; cfg is the stage's training config.
    """
    from shared.translation import build_data, load_pairs, pad
    from shared.translation_run import score_split

    torch.manual_seed(0)
    text = load_pairs("multi30k", "en", "fr", max_train_pairs=50, seed=0)
    text.src["val"], text.tgt["val"] = text.src["train"], text.tgt["train"]  # score what it learnt
    data = build_data(text, min_freq=1, max_len=20)
    model = model_for(len(data.src_vocab), len(data.tgt_vocab))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    src, src_len = pad(data.src_ids["train"])
    tgt, _ = pad(data.tgt_ids["train"])
    for _ in range(steps):
        logits = model(src, src_len, tgt)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert score_split(model, data, "val", cfg)["bleu"] > 90


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, stdin=None, cwd=None, timeout=180) -> subprocess.CompletedProcess:
    """`python -m <args>` as a user runs it, from the repository root (or `cwd`)."""
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, input=stdin, env=env,
                          cwd=cwd or REPO_ROOT, timeout=timeout)


def last_line(done: subprocess.CompletedProcess) -> str:
    """The last line a command printed on stderr (where errors go), or on stdout when stderr is empty."""
    lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
    return lines[-1] if lines else ""


def load_bench(script: str):
    """A script of bench/ (not a package) as a module, e.g. load_bench("exercises")."""
    path = Path(__file__).parent.parent / "bench" / f"{script}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{script}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
