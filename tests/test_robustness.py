"""Nothing a learner trained is ever lost, and no ordinary mistake ends in a traceback.

Each mistake is checked in process: the command's `main(argv)` raises the `UserError` whose message
`run_main` prints as one line (exit 1), or argparse exits 2 with one line. Each command is also run
once as a user runs it (`python -m ...`, see `one_error`): exit code, one sentence, no traceback.
"""

import contextlib
import json
import math
import multiprocessing
import os
import random
import re
import signal
import stat
import time

import numpy as np
import pytest
import torch
from helpers import last_line, run_cli

from shared.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from shared.cli import UserError
from shared.report import render
from stage1_mlp import train as stage1_train
from stage3_attention_seq2seq import train as stage3_train
from stage3_attention_seq2seq import translate as stage3_translate
from stage5_gpt import train as stage5_train
from stage5_gpt.data import load_corpus

TINY_TREC = ["--preset", "tiny", "--dataset", "trec"]


def one_error(done, code: int, words: str) -> None:
    """The command failed with `code`, its last line is one sentence containing `words`, and no traceback."""
    assert done.returncode == code, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert words in last_line(done), last_line(done)


@contextlib.contextmanager
def one_sentence(words: str):
    """In process: the block raises the UserError that `run_main` prints as one line (exit 1); it has `words`."""
    with pytest.raises(UserError, match=re.escape(words)) as raised:
        yield raised
    assert "\n" not in str(raised.value), str(raised.value)


def refused_flag(main, argv: list[str], words: str, capsys) -> None:
    """In process: parsing argv exits 2 with one line on stderr containing `words` (no usage dump)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and words in err and err.count("\n") == 1, err


@pytest.fixture(scope="module")
def trec_run(tmp_path_factory):
    """A finished stage 1 run (tiny preset, seconds)."""
    out = tmp_path_factory.mktemp("trec") / "run"
    stage1_train.main([*TINY_TREC, "--out_dir", str(out)])
    return out


# ---------------------------------------------------------------- 1. a new run never replaces a finished one


def test_the_same_command_again_refuses_and_keeps_the_finished_run(trec_run):
    before = {p.name: p.read_bytes() for p in trec_run.iterdir() if p.is_file()}
    done = run_cli("stage1_mlp.train", *TINY_TREC, "--out_dir", str(trec_run))  # stage 1's train.py as a user runs it
    one_error(done, 1, "already holds a finished run")
    assert all(flag in last_line(done) for flag in ("--resume", "--out_dir NEW_FOLDER", "--overwrite"))
    after = {p.name: p.read_bytes() for p in trec_run.iterdir() if p.is_file()}
    assert after == before  # not one byte changed


def test_default_run_names_are_protected_too(tmp_path, monkeypatch):
    """No --out_dir: the run folder is runs/<stage>/<dataset>-<preset>; the refusal names --run_name."""
    runs = tmp_path / "runs" / "stage1_mlp" / "trec-tiny"
    runs.mkdir(parents=True)
    (runs / "metrics.json").write_text(json.dumps({"steps": 7}))
    monkeypatch.chdir(tmp_path)  # runs/ is relative to where the command runs
    with one_sentence("already holds a finished run (7 steps); continue it with --resume") as refused:
        stage1_train.main(TINY_TREC)
    assert "--run_name NEW_NAME" in str(refused.value)
    assert json.loads((runs / "metrics.json").read_text()) == {"steps": 7}
    (runs / "metrics.json").write_text(json.dumps({"steps": 7, "interrupted": True}))
    with one_sentence("already holds a run stopped by Ctrl-C at step 7; continue it with --resume"):
        stage1_train.main(TINY_TREC)


def test_overwrite_replaces_and_a_new_name_starts_afresh(trec_run, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in trec_run.iterdir():
        if p.is_file():
            (copy / p.name).write_bytes(p.read_bytes())
    (copy / "my_notes.txt").write_text("mine")
    record = stage1_train.main([*TINY_TREC, "--out_dir", str(copy), "--overwrite", "--max_steps", "3"])
    assert record["steps"] == 3 and load_checkpoint(copy / "last.pt")["step"] == 3
    assert (copy / "my_notes.txt").read_text() == "mine"  # --overwrite removes only the run's own files


def test_a_live_run_locks_its_folder_and_a_dead_ones_lock_is_taken_over(tmp_path):
    import socket
    import subprocess

    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        out = tmp_path / "run"
        out.mkdir()
        (out / ".lock").write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        with one_sentence(f"another training run (process {sleeper.pid}) is writing to"):
            stage1_train.main([*TINY_TREC, "--out_dir", str(out)])
        assert json.loads((out / ".lock").read_text())["pid"] == sleeper.pid  # the live run's lock is left alone
    finally:
        sleeper.kill()
        sleeper.wait()
    record = stage1_train.main([*TINY_TREC, "--out_dir", str(out), "--max_steps", "2"])  # its process has ended
    assert record["steps"] == 2 and not (out / ".lock").exists()


# ---------------------------------------------------------------- 2. the report never averages in interrupted runs


def test_report_keeps_interrupted_runs_out_of_the_seed_fold():
    base = {"stage": "stage1_mlp", "task": "classification", "dataset": "trec", "model": "MLP", "preset": "cpu"}
    runs = [{**base, "run": "trec-cpu", "test_accuracy": 0.90, "steps": 100},
            {**base, "run": "trec-cpu-s1", "test_accuracy": 0.92, "steps": 100},
            {**base, "run": "trec-cpu-s2", "test_accuracy": 0.10, "steps": 7, "interrupted": True}]
    table = render(runs)
    assert "91.00 ± 1.41" in table  # the two finished seeds only
    assert "MLP (interrupted at step 7)" in table and "| 10.00 |" in table


# ---------------------------------------------------------------- 3. the prepared-token cache is checked


def test_a_damaged_token_cache_is_rebuilt(capsys):
    corpus = load_corpus("tinyshakespeare", "char")
    whole = np.array(corpus.splits["train"])
    folder = __import__("pathlib").Path(corpus.splits["train"].filename).parent
    del corpus
    train_bin = folder / "train.bin"
    train_bin.write_bytes(train_bin.read_bytes()[: len(whole)])  # truncated to half its bytes
    capsys.readouterr()
    again = load_corpus("tinyshakespeare", "char")
    assert "train.bin has" in capsys.readouterr().out
    np.testing.assert_array_equal(np.array(again.splits["train"]), whole)
    del again
    flipped = bytearray(train_bin.read_bytes())
    flipped[10] ^= 1  # same size, other content
    train_bin.write_bytes(bytes(flipped))
    assert len(load_corpus("tinyshakespeare", "char").splits["train"]) == len(whole)
    assert "does not match its checksum" in capsys.readouterr().out
    (folder / "val.bin").unlink()
    (folder / "meta.json").write_text("{not json")
    assert len(load_corpus("tinyshakespeare", "char").splits["val"]) > 0
    assert "meta.json is unreadable" in capsys.readouterr().out


# ---------------------------------------------------------------- 4. killed saves: clean up, resume from what is intact


def test_a_stray_temp_file_and_no_last_pt_resume_from_best_pt(tmp_path, capsys):
    out = tmp_path / "run"
    stage1_train.main([*TINY_TREC, "--out_dir", str(out), "--max_steps", "20", "--eval_interval", "10",
                       "--lr_schedule", "constant"])
    (out / "last.pt").unlink()
    (out / ".last.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    record = stage1_train.main([*TINY_TREC, "--out_dir", str(out), "--max_steps", "30", "--eval_interval", "10",
                                "--lr_schedule", "constant", "--resume"])
    said = capsys.readouterr().out
    assert "resuming from" in said and "best.pt" in said and "last.pt is missing" in said
    assert record["steps"] == 30 and not list(out.glob(".*.tmp"))


def _train_in_child(run_dir, resume: bool, steps: int) -> None:
    """A forked child: it starts in milliseconds (torch is imported already) and trains with one
    thread (OpenMP's pool does not survive a fork), printing nothing. The same model and data every
    time, a pure function of the seed, as in every stage."""
    from torch import nn

    from shared.batching import EpochBatches
    from shared.run import Run
    from shared.train import TrainConfig, make_adamw, train

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = torch.randn(512, 64), torch.randint(0, 4, (512,))
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 4))  # 83k parameters: each save takes a few milliseconds
    batches = EpochBatches(512, 32, seed=0)
    cfg = TrainConfig(max_steps=steps, eval_interval=1, log_interval=1, lr_schedule="constant", resume=resume,
                      out_dir=str(run_dir))
    run = Run("toy", cfg)
    train(model, make_adamw(model, cfg.lr, 0.0, run.device), run,
          batch_at=lambda i: (x[batches.indices(i)], y[batches.indices(i)]),
          loss_fn=lambda m, b: (nn.functional.cross_entropy(m(b[0]), b[1]), len(b[1])),
          evaluate=lambda m: {"val_loss": nn.functional.cross_entropy(m(x[:64]), y[:64]).item()},
          steps_per_epoch=batches.steps_per_epoch)


def test_kills_during_saves_never_damage_a_checkpoint_and_resume_is_exact(tmp_path):
    """Killed (SIGKILL) 10 times, half of them while a checkpoint was being written: every checkpoint
    left behind loads, and --resume then finishes with exactly the uninterrupted run's weights."""
    steps = 100
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])  # its first use imports torch._dynamo (seconds):
    # do that here, once, so that every forked child starts training at once
    fork = multiprocessing.get_context("fork")

    def run(run_dir, resume):
        child = fork.Process(target=_train_in_child, args=(run_dir, resume, steps))
        child.start()
        return child

    run(tmp_path / "whole", False).join()
    out = tmp_path / "killed"
    rng = random.Random(0)
    kills = mid_save_kills = 0
    while kills < 10:
        child = run(out, any((out / n).exists() for n in ("last.pt", "best.pt")))
        # Even kills at a random moment; odd ones while a checkpoint is being written.
        deadline = time.monotonic() + (rng.uniform(0.05, 0.4) if kills % 2 == 0 else 20)
        while time.monotonic() < deadline and child.is_alive():
            if kills % 2 and list(out.glob(".*.pt.*.tmp")):
                mid_save_kills += 1
                break
        assert child.is_alive(), "the run finished before it was killed 10 times"
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        kills += 1
        for name in ("last.pt", "best.pt"):
            if (out / name).exists():
                load_checkpoint(out / name)  # intact, whatever the moment of the kill
    assert mid_save_kills >= 3 and load_checkpoint(out / "best.pt")["step"] > 0  # it got somewhere between kills
    run(out, True).join()  # --resume, to the end
    whole = load_checkpoint(tmp_path / "whole" / "last.pt")
    resumed = load_checkpoint(out / "last.pt")
    assert resumed["step"] == whole["step"] == steps
    for key in whole["model"]:
        torch.testing.assert_close(resumed["model"][key], whole["model"][key], rtol=0, atol=1e-6)


# ---------------------------------------------------------------- crashes on ordinary input: one sentence each


def test_chinese_text_without_spaces_trains_and_is_scored(tmp_path):
    text = tmp_path / "zh.txt"
    text.write_text("从前有一座山，山里有一座庙，庙里有个老和尚在给小和尚讲故事。" * 300, encoding="utf-8")
    flags = ["--preset", "tiny", "--dataset", "text_file", "--text_file", str(text), "--max_steps", "20"]
    for tokenizer in ("char", "gpt2"):  # characters, and GPT-2's bytes
        stage5_train.main([*flags, "--tokenizer", tokenizer, "--out_dir", str(tmp_path / tokenizer)])
    for tokenizer in ("char", "gpt2"):
        metrics = json.loads((tmp_path / tokenizer / "metrics.json").read_text(encoding="utf-8"))
        assert math.isfinite(metrics["val_perplexity"]) and metrics["val_loss"] < 0.9 * math.log(metrics["params"])
        assert "val_word_perplexity" not in metrics  # words are WikiText's unit, not Chinese text's


def test_text_problems_are_one_sentence(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("a few words of text. " * 20, encoding="utf-8")  # its last 10% is shorter than the context
    with one_sentence("the val split has 42 tokens, fewer than --block_size 64 + 1"):
        stage5_train.main(["--preset", "tiny", "--dataset", "text_file", "--text_file", str(short),
                           "--tokenizer", "char", "--block_size", "64", "--out_dir", str(tmp_path / "a")])
    with one_sentence("is a folder; give the path of one UTF-8 text file"):
        stage5_train.main(["--preset", "tiny", "--dataset", "text_file", "--text_file", str(tmp_path),
                           "--out_dir", str(tmp_path / "b")])


def test_resume_with_changed_settings_names_them(trec_run):
    before = {p.name: p.read_bytes() for p in trec_run.iterdir() if p.is_file()}
    with one_sentence("these settings differ from the saved run: --hash_buckets"):
        stage1_train.main([*TINY_TREC, "--out_dir", str(trec_run), "--resume", "--hash_buckets", "999"])
    with one_sentence("it was trained on --dataset trec, not sst2"):
        stage1_train.main(["--preset", "tiny", "--dataset", "sst2", "--out_dir", str(trec_run), "--resume"])
    assert {p.name: p.read_bytes() for p in trec_run.iterdir() if p.is_file()} == before  # refused, not touched


def test_resume_of_a_gpt_with_another_width_names_it(tmp_path):
    out = tmp_path / "gpt"
    flags = ["--preset", "tiny", "--max_steps", "4", "--eval_interval", "2", "--out_dir", str(out)]
    stage5_train.main(flags)
    with one_sentence("--n_embd 32 (now 64)"):
        stage5_train.main([*flags, "--resume", "--n_embd", "64", "--max_steps", "6"])


def test_unwritable_run_folders_are_one_sentence(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    read_only = "/sys/llm-stages-test-run"  # sysfs: nobody, root included, may create a folder there
    for out_dir, words in [(a_file, "is a file, not a folder"), (a_file / "run", "could not write"),
                           (read_only, "choose a folder you can write to")]:
        with one_sentence(words):
            stage1_train.main([*TINY_TREC, "--out_dir", str(out_dir)])


def test_checkpoint_and_records_follow_the_umask(trec_run):
    mask = os.umask(0)
    os.umask(mask)
    for name in ("best.pt", "last.pt", "metrics.json", "history.csv", "config.json"):
        assert stat.S_IMODE((trec_run / name).stat().st_mode) == 0o666 & ~mask, name


def test_unreadable_checkpoint_says_permission_denied(tmp_path, monkeypatch):
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"model": {}})

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(torch, "load", denied)
    with pytest.raises(CheckpointError, match="cannot be read: permission denied") as err:
        load_checkpoint(path)
    assert "delete" not in str(err.value) and "again" not in str(err.value)


def test_device_and_flag_mistakes_are_one_sentence():
    """Stage 6's classify and stage 2's evaluate as a user runs them."""
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    one_error(run_cli("stage6_finetune_cls.classify", "hello", "--device", "cuda"), 1, "CUDA is not available")
    one_error(run_cli("stage2_rnn_lstm.evaluate", "--eval_streams", "0"), 2, "--eval_streams must be at least 1")


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("s3") / "run"
    stage3_train.main(["--preset", "tiny", "--max_steps", "5", "--eval_pairs", "20", "--beam_size", "2",
                       "--out_dir", str(out)])
    return out


def test_translation_evaluate_prints_its_scores_before_a_failed_write(translation_run):
    (translation_run / "eval-val.json").mkdir()  # something that cannot be replaced by a file
    done = run_cli("stage3_attention_seq2seq.evaluate", "--checkpoint", str(translation_run), "--split", "val",
                   "--beam_size", "1")  # stage 3's evaluate as a user runs it
    one_error(done, 1, "the results above were printed but not saved: could not write")
    assert "greedy sacreBLEU" in done.stdout


def test_attention_heatmap_to_an_unwritable_path_is_one_sentence(translation_run, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    with one_sentence("could not write"):
        stage3_translate.main(["a man .", "--checkpoint", str(translation_run), "--show_attention",
                               str(a_file / "map.png")])
    assert capsys.readouterr().out.strip()  # the translation was printed first


# ---------------------------------------------------------------- Ctrl-C: prompt, quiet, nothing lost


def _loop_task(tmp_path, evaluate, **cfg):
    from torch import nn

    from shared.batching import EpochBatches
    from shared.run import Run
    from shared.train import TrainConfig, make_adamw, train

    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    model = nn.Linear(4, 2)
    batches = EpochBatches(64, 16, seed=0)
    run = Run("toy", TrainConfig(**{"max_steps": 8, "eval_interval": 4, **cfg, "out_dir": str(tmp_path)}))
    return train(model, make_adamw(model, 1e-3, 0.0, run.device), run,
                 batch_at=lambda i: (x[batches.indices(i)], y[batches.indices(i)]),
                 loss_fn=lambda m, b: (nn.functional.cross_entropy(m(b[0]), b[1]), len(b[1])),
                 evaluate=evaluate, steps_per_epoch=batches.steps_per_epoch)


def test_ctrl_c_during_an_evaluation_stops_it_at_once_and_saves(tmp_path):
    calls = []

    def slow_evaluate(model):
        calls.append(1)
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C while the evaluation runs
        for _ in range(200):  # it would take 20 s
            time.sleep(0.1)
        return {"val_loss": 0.0}

    started = time.monotonic()
    result = _loop_task(tmp_path, slow_evaluate)
    assert time.monotonic() - started < 5 and result.interrupted and result.steps == 4 and len(calls) == 1
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 4


def test_a_second_ctrl_c_while_saving_waits_for_the_file(tmp_path, monkeypatch):
    import shared.checkpoint

    real_save = torch.save

    def save_interrupted_twice(obj, fh):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # both arrive while the file is being written
        real_save(obj, fh)

    monkeypatch.setattr(shared.checkpoint.torch, "save", save_interrupted_twice)
    with pytest.raises(KeyboardInterrupt):
        _loop_task(tmp_path, lambda m: {"val_loss": 1.0})
    monkeypatch.setattr(shared.checkpoint.torch, "save", real_save)
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 4  # complete, not half a file
    assert not list(tmp_path.glob(".*.tmp")) and not (tmp_path / ".lock").exists()
