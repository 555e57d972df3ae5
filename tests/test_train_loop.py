"""The shared training loop: it learns, resumes exactly, stops cleanly on Ctrl-C and on NaN."""

import errno
import math
import os
import signal

import pytest
import torch
from torch import nn

from shared.batching import EpochBatches
from shared.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from shared.cli import UserError
from shared.records import read_history
from shared.run import Run
from shared.train import TrainConfig, TrainingDiverged, lr_at, make_adamw, train


def make_task(seed=0, n=256):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=gen)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return x, y


def make_model():
    torch.manual_seed(0)
    # Dropout makes the loss depend on the RNG, so exact resume must restore it too.
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2))


def run(tmp_path, model, interrupt_at=None, nan_at=None, resume=False, **overrides):
    x, y = make_task()
    batches = EpochBatches(len(x), 16, seed=3)
    settings = dict(max_steps=40, lr=1e-2, warmup_steps=5, eval_interval=10, log_interval=1, resume=resume,
                    out_dir=str(tmp_path))
    run = Run("toy", TrainConfig(**{**settings, **overrides}))

    def batch_at(i):
        if interrupt_at is not None and i == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C during this step
        idx = batches.indices(i)
        return x[idx], y[idx]

    def loss_fn(m, batch):
        loss = nn.functional.cross_entropy(m(batch[0]), batch[1])
        if nan_at is not None and len(history_steps) >= nan_at:
            loss = loss * float("nan")
        history_steps.append(1)
        return loss, len(batch[1])

    history_steps = []

    def evaluate(m):
        return {"val_loss": nn.functional.cross_entropy(m(x[:64]), y[:64]).item()}

    optimizer = make_adamw(model, run.cfg.lr, 0.0, run.device)
    return train(model, optimizer, run, batch_at=batch_at, loss_fn=loss_fn, evaluate=evaluate,
                 steps_per_epoch=batches.steps_per_epoch, extra_state={"note": "hi"})


def losses(history):
    return [row["train_loss"] for row in history]


def test_loss_goes_down_and_records_are_written(tmp_path):
    result = run(tmp_path, make_model())
    train_losses = losses(result.history)
    assert sum(train_losses[-5:]) / 5 < 0.6 * sum(train_losses[:5]) / 5
    assert result.steps == 40 and not result.interrupted
    for name in ("config.json", "history.csv", "curves.png", "best.pt", "last.pt"):
        assert (tmp_path / name).is_file()
    assert len(read_history(tmp_path / "history.csv")) == 40
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 40 and state["note"] == "hi"


def test_ctrl_c_saves_and_resume_equals_uninterrupted(tmp_path):
    full = run(tmp_path / "full", make_model())
    first = run(tmp_path / "split", make_model(), interrupt_at=17)
    assert first.interrupted and first.steps == 18
    assert load_checkpoint(tmp_path / "split" / "last.pt")["step"] == 18
    second = run(tmp_path / "split", make_model(), resume=True)
    assert second.steps == 40
    assert losses(second.history) == pytest.approx(losses(full.history), abs=1e-6)
    a = load_checkpoint(tmp_path / "full" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "split" / "last.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"training loss became nan at step 25; the last good checkpoint"):
        run(tmp_path, make_model(), nan_at=24)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 20  # the eval at step 20, before the NaN
    assert all(math.isfinite(v.float().sum()) for v in state["model"].values())
    assert (tmp_path / "history.csv").is_file()


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="holds no checkpoint yet"):
        run(tmp_path, make_model(), resume=True)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is damaged"):
        load_checkpoint(path)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(2)}})

    def broken_save(obj, fh):
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(UserError, match=r"model.pt: No space left on device; free some disk space"):
        save_checkpoint(path, {"model": {"w": torch.zeros(2)}})
    assert load_checkpoint(path)["model"]["w"].tolist() == [1.0, 1.0]  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temp file left behind


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(max_steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg, 100) == pytest.approx(0.1)
    assert lr_at(9, cfg, 100) == pytest.approx(1.0)
    assert lr_at(10, cfg, 100) == pytest.approx(1.0)
    assert lr_at(55, cfg, 100) == pytest.approx(0.55)
    assert lr_at(100, cfg, 100) == pytest.approx(0.1)
    constant = TrainConfig(max_steps=100, lr=0.5, lr_schedule="constant")
    assert lr_at(70, constant, 100) == 0.5


def test_epoch_batches_cover_each_epoch_once_and_are_reproducible():
    batches = EpochBatches(10, 4, seed=1)
    assert batches.steps_per_epoch == 3
    epoch0 = torch.cat([batches.indices(i) for i in range(3)])
    assert sorted(epoch0.tolist()) == list(range(10))
    again = EpochBatches(10, 4, seed=1)
    assert again.indices(4).tolist() == batches.indices(4).tolist()
    assert batches.indices(3).tolist() != epoch0[:4].tolist() or batches.indices(4).tolist() != epoch0[4:8].tolist()


def test_max_minutes_stops_the_run_and_saves(tmp_path):
    """A time budget of ~0 stops after the first step, saves last.pt and is not an interruption."""
    from stage1_mlp import train as stage1_train

    record = stage1_train.main(["--preset", "tiny", "--dataset", "trec", "--max_minutes", "1e-6",
                                "--out_dir", str(tmp_path)])
    assert record["steps"] == 1 and not record["interrupted"] and (tmp_path / "last.pt").exists()


def test_next_token_hits_count_top1_and_top5():
    from shared.metrics import next_token_accuracy, next_token_hits

    logits = torch.arange(10.0).repeat(3, 1)  # every row ranks token 9 first, then 8, 7, ...
    targets = torch.tensor([9, 5, 2])  # first; fifth; eighth
    hits = next_token_hits(logits, targets)
    assert hits.tolist() == [1, 2]
    assert next_token_accuracy("val", hits, 3) == {"val_top1_accuracy": 1 / 3, "val_top5_accuracy": 2 / 3}


@pytest.mark.parametrize("higher_is_better, best_step", [(False, 20), (True, 40)])
def test_best_pt_follows_the_direction_the_stage_names(tmp_path, higher_is_better, best_step):
    """best.pt keeps the lowest value of a metric unless the stage says higher is better; never guessed
    from the metric's name (bits per byte is a loss-like number)."""
    values = iter([3.0, 1.0, 2.0, 4.0])  # the four evaluations of a 40-step run
    x, y = make_task()
    model = make_model()
    run = Run("toy", TrainConfig(max_steps=40, eval_interval=10, out_dir=str(tmp_path)))
    train(model, make_adamw(model, 1e-2, 0.0, run.device), run, batch_at=lambda i: (x[:16], y[:16]),
          loss_fn=lambda m, b: (nn.functional.cross_entropy(m(b[0]), b[1]), 16),
          evaluate=lambda m: {"val_bits_per_byte": next(values)}, steps_per_epoch=16,
          select_by="val_bits_per_byte", higher_is_better=higher_is_better)
    assert load_checkpoint(tmp_path / "best.pt")["step"] == best_step


def test_a_nan_with_a_part_that_fails_its_check_names_the_part_not_the_learning_rate(tmp_path):
    from shared.check import YourParts

    run = Run("stage1_mlp", TrainConfig(max_steps=5, out_dir=str(tmp_path)))
    run.yours = YourParts({"masked_mean": lambda *a: None}, failing=["masked_mean"])
    model = nn.Linear(2, 2)
    run.restore(model, make_adamw(model, 1e-3, 0.0, run.device), None)  # the run's start: its clock
    with pytest.raises(TrainingDiverged, match=r"with your masked_mean, which does not pass its check; .*"
                                               r"python -m shared.check stage1\)") as caught:
        run.check_finite(float("nan"), 3, [])
    assert "--lr" not in str(caught.value)


def test_two_accumulated_micro_batches_are_one_step_of_the_whole_batch(tmp_path):
    """--grad_accum 2 with half batches takes the step one batch of the whole size takes (exercise E5.6
    measures the same on stage 5, where the micro-batches are drawn apart)."""
    x, y = make_task()
    models = []
    for accum in (1, 2):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))  # no dropout: no RNG in the step
        # fp32: under bf16 autocast (--amp auto on a bf16 CPU) halves and wholes round differently.
        run = Run("toy", TrainConfig(max_steps=12, lr=0.1, warmup_steps=2, grad_accum=accum, eval_interval=12,
                                     amp="off", out_dir=str(tmp_path / f"accum{accum}")))

        def batch_at(i, accum=accum):  # batch i of 16 examples, or its half i % 2 when accumulating
            step, half = divmod(i, accum)
            idx = torch.arange(16 * step, 16 * step + 16).view(accum, -1)[half] % len(x)
            return x[idx], y[idx]

        def loss_fn(m, batch):
            return nn.functional.cross_entropy(m(batch[0]), batch[1]), len(batch[1])

        train(model, make_adamw(model, 0.1, 0.0, run.device), run, batch_at=batch_at, loss_fn=loss_fn,
              steps_per_epoch=16,
              evaluate=lambda m: {"val_loss": nn.functional.cross_entropy(m(x[:64]), y[:64]).item()})
        models.append(model)
    for whole, accumulated in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(accumulated, whole, rtol=0, atol=1e-6)
