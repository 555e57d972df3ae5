"""The one training loop every stage uses: `train(...)`, a plain function that returns its history.

What it does, in order, each step:
    lr = lr_at(step)                               warmup, then cosine decay (or constant)
    for each of grad_accum micro-batches:
        batch = batch_at(micro_index)              data is a pure function of its index: exact resume
        with autocast(dtype): loss = loss_fn(model, batch)
        (scaler.scale(loss) / grad_accum).backward()
    clip gradients; optimizer step; zero gradients
    every eval_interval steps: evaluate, save last.pt (and best.pt when val_loss improves)

Ctrl-C asks the loop to stop after the current step; it saves last.pt and returns normally.
A NaN/inf loss stops the run with a `TrainingDiverged` error and leaves the last good checkpoint.
Under `torchrun` (DistributedDataParallel) the same function runs in every process.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from shared import distributed
from shared.checkpoint import resume_checkpoint, save_checkpoint
from shared.cli import UserError, check
from shared.data import dataset_slug
from shared.devices import autocast, resolve_amp
from shared.records import plot_history, write_history, write_json
from shared.runs import check_run_dir, claim_run_dir, release_run_dir


@dataclass(frozen=True)
class TrainConfig:
    """The flags every stage shares. A stage's config subclasses this and adds its own fields."""

    preset: str = "cpu"
    dataset: str = ""
    seed: int = field(default=1337, metadata={"help": "seeds init, data order and dropout"})
    device: Literal["auto", "cpu", "cuda", "mps"] = field(default="auto", metadata={"help": "auto: cuda > mps > cpu"})
    amp: Literal["auto", "bf16", "fp16", "off"] = field(
        default="auto", metadata={"help": "mixed precision; auto: bf16 (or fp16 + GradScaler) on CUDA, off elsewhere"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the model"})
    epochs: int = field(default=1, metadata={
        "help": "passes over the training data (ignored when max_steps > 0; alone, it replaces a preset's max_steps)"})
    max_steps: int = field(default=0, metadata={"help": "optimizer steps; 0 = derive from epochs"})
    max_minutes: float = field(default=0.0, metadata={
        "help": "stop once this much training time (evaluations excluded) has passed; 0 = no limit"})
    batch_size: int = 32
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "cosine decays to lr * min_lr_ratio"})
    lr_schedule: Literal["cosine", "constant", "inverse_sqrt"] = field(
        default="cosine", metadata={"help": "after warmup: cosine decay, constant, or 1/sqrt(step) (Transformer)"})
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm; 0 = off"})
    eval_interval: int = field(default=0, metadata={"help": "steps between evals; 0 = once per epoch"})
    log_interval: int = 50
    out_dir: str = field(default="", metadata={"help": "run folder; default runs/<stage>/<run_name>"})
    run_name: str = field(default="", metadata={"help": "default <dataset>-<preset>[-s<seed>]"})
    resume: bool = field(default=False, metadata={"help": "continue the run in the run folder (its newest checkpoint)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a run already in the run folder"})
    yours: bool = field(default=False, metadata={
        "help": "train with your own parts from the stage's yours.py (check them first: python -m shared.check)"})
    yours_file: str = field(default="", metadata={"help": "with --yours: another file with the same functions"})

    def __post_init__(self) -> None:
        check(self.epochs >= 1 or self.max_steps >= 1, "--epochs or --max_steps must be at least 1")
        check(self.max_steps >= 0, "--max_steps must be >= 0")
        check(self.max_minutes >= 0, "--max_minutes must be >= 0")
        check(self.batch_size >= 1, "--batch_size must be at least 1")
        check(self.grad_accum >= 1, "--grad_accum must be at least 1")
        check(self.lr > 0 and math.isfinite(self.lr), "--lr must be a positive number")
        check(0 <= self.min_lr_ratio <= 1, "--min_lr_ratio must be between 0 and 1")
        check(self.warmup_steps >= 0, "--warmup_steps must be >= 0")
        check(self.weight_decay >= 0, "--weight_decay must be >= 0")
        check(self.grad_clip >= 0, "--grad_clip must be >= 0")
        check(self.eval_interval >= 0 and self.log_interval >= 1, "--eval_interval must be >= 0, --log_interval >= 1")
        check(not (self.resume and self.overwrite), "--resume continues a run and --overwrite replaces it: give one")

    def run_dir(self, stage: str) -> Path:
        if self.out_dir:
            return Path(self.out_dir)
        return Path("runs") / stage / (self.run_name or f"{dataset_slug(self.dataset)}-{self.preset}{self.name_suffix}")

    @property
    def name_suffix(self) -> str:
        """The end of a default run name: -yours for your parts, -s<seed> for a seed other than 1337."""
        return ("-yours" if self.yours else "") + ("" if self.seed == 1337 else f"-s{self.seed}")

    def checked_run_dir(self, stage: str) -> Path:
        """run_dir, after checking (before any slow work) that this run may write there: see shared.runs."""
        return check_run_dir(self.run_dir(stage), self.resume, self.overwrite, self.name_flag)

    @property
    def name_flag(self) -> str:
        """The flag that picks another run folder: --out_dir when it was given, else --run_name."""
        return "--out_dir" if self.out_dir else "--run_name"


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


# --------------------------------------------------------------------------- helpers


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def make_adamw(model: nn.Module, lr: float, weight_decay: float, device: torch.device,
               betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, norms' gains or 1-d tensors)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    # One fused kernel on GPUs; elsewhere the multi-tensor (foreach) update, fewer small ops than a loop.
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused, foreach=None if fused else True)


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Linear warmup to cfg.lr, then cosine decay to cfg.lr * min_lr_ratio, constant, or inverse square
    root: lr * sqrt(warmup / step), the schedule of "Attention Is All You Need" (Noam) with its peak
    written as cfg.lr instead of d_model^-0.5 * warmup^-0.5."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "inverse_sqrt":
        return cfg.lr * math.sqrt(max(1, cfg.warmup_steps) / (step + 1))
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    min_lr = cfg.lr * cfg.min_lr_ratio
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - min_lr)


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _EvaluationInterrupted(KeyboardInterrupt):
    """Ctrl-C during an evaluation: the loop skips the rest of it, saves and stops."""


class _StopOnInterrupt:
    """Ctrl-C during training: finish the current step, save, stop. During an evaluation: stop the
    evaluation at once, save, stop. A second Ctrl-C aborts, but never in the middle of writing a
    checkpoint: it takes effect once the file is complete."""

    def __init__(self, interrupt_evaluations: bool) -> None:
        self.requested = self.evaluating = self.saving = self.abort_after_save = False
        self.interrupt_evaluations = interrupt_evaluations
        self._previous = None

    def __enter__(self) -> _StopOnInterrupt:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        if self.saving:
            self.abort_after_save = self.requested
            self.requested = True
            print("\nCtrl-C: writing a checkpoint; stopping once it is complete.", file=sys.stderr)
            return
        if self.evaluating and self.interrupt_evaluations:
            self.requested = True
            print("\nCtrl-C: stopping the evaluation and saving a checkpoint (Ctrl-C again to abort).",
                  file=sys.stderr)
            raise _EvaluationInterrupted
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step and saving a checkpoint (Ctrl-C again to abort).",
              file=sys.stderr)

    @contextlib.contextmanager
    def phase(self, name: Literal["evaluating", "saving"]):
        setattr(self, name, True)
        try:
            yield
        finally:
            setattr(self, name, False)
        if name == "saving" and self.abort_after_save:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# Settings that may change when a run is resumed (how long, how often, where it runs); any other
# difference from the saved config is named when the checkpoint does not fit.
_RESUMABLE_CHANGES = {"resume", "overwrite", "max_steps", "epochs", "max_minutes", "eval_interval", "log_interval",
                      "device", "amp", "compile", "out_dir", "run_name"}


def _restore(state: dict[str, Any], path: Path, cfg: TrainConfig, model: nn.Module,
             optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """Load a training checkpoint into the model, optimizer and scaler, or say which setting differs."""
    saved, now = state.get("config") or {}, asdict(cfg)
    changed = [f"--{k} {saved[k]!r} (now {now[k]!r})" for k in now
               if k in saved and k not in _RESUMABLE_CHANGES and saved[k] != now[k]]
    where = f"start a new run with another {cfg.name_flag}"
    if saved.get("dataset", cfg.dataset) != cfg.dataset:
        raise UserError(f"cannot resume {path}: it was trained on --dataset {saved['dataset']}, not {cfg.dataset}; "
                        f"resume with --dataset {saved['dataset']}, or {where}.")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        if changed:
            raise UserError(f"cannot resume {path}: these settings differ from the saved run: {', '.join(changed)}; "
                            f"resume with the saved settings, or {where}.") from None
        raise UserError(f"cannot resume {path}: the saved model does not fit this one "
                        f"({str(err).splitlines()[0][:120]}); {where}.") from None
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])


# --------------------------------------------------------------------------- the loop


@dataclass
class TrainResult:
    history: list[dict[str, float]]
    best_path: Path
    last_path: Path
    train_seconds: float
    items_per_sec: float
    interrupted: bool
    steps: int
    out_of_time: bool = False  # stopped by --max_minutes


@dataclass
class _Progress:
    """What a checkpoint must hold to continue exactly where the run stopped."""

    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_val: float = math.inf  # the select_by metric of best.pt, signed so that lower is better


def train(
    model: nn.Module,
    cfg: TrainConfig,
    *,
    batch_at: Callable[[int], Any],
    loss_fn: Callable[[nn.Module, Any], tuple[torch.Tensor, int]],
    evaluate: Callable[[nn.Module], dict[str, float]] | None,
    run_dir: Path,
    steps_per_epoch: int,
    extra_state: dict[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    item_name: str = "samples",
    select_by: str = "val_loss",
) -> TrainResult:
    """Train `model` (already on its device) and return what happened.

    batch_at(i)         the i-th micro-batch, on the model's device; a pure function of i (and the seed)
    loss_fn(model, b)   (mean loss over the batch, number of items in it: samples or tokens)
    evaluate(model)     validation metrics, including `select_by`; called in eval mode, no grad
    steps_per_epoch     optimizer steps per pass over the training data (for --epochs)
    extra_state         what the stage needs to rebuild the model later (vocab, model config)
    select_by           the validation metric that picks best.pt: lower is better for a loss or
                        perplexity, higher for anything else (accuracy, F1, BLEU)
    """
    device = next(model.parameters()).device
    amp_dtype = resolve_amp(cfg.amp, device)
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    eval_interval = cfg.eval_interval or steps_per_epoch
    optimizer = optimizer or make_adamw(model, cfg.lr, cfg.weight_decay, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)  # loss scaling: fp16 only
    step_model = distributed.wrap(torch.compile(model) if cfg.compile else model, device)  # what the steps call
    rank, world = distributed.rank_world()
    is_main = rank == 0
    sign = 1.0 if ("loss" in select_by or "perplexity" in select_by) else -1.0
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    progress = _Progress()

    def checkpoint(path: Path) -> None:
        if is_main:
            with stop.phase("saving"):  # a second Ctrl-C waits until the file is complete
                save_checkpoint(path, {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None, "step": progress.step,
                    "rng": _rng_state(), "best_val": progress.best_val, "history": progress.history,
                    "config": asdict(cfg), **(extra_state or {}),
                })

    last_plot = -math.inf

    def save_records(final: bool = False) -> None:
        """history.csv at every evaluation; curves.png (a slower drawing) at most every 30 s and at the end."""
        nonlocal last_plot
        if is_main:
            write_history(run_dir / "history.csv", progress.history)
            if final or time.monotonic() - last_plot > 30:
                plot_history(run_dir / "curves.png", progress.history, f"{run_dir.parent.name} / {run_dir.name}")
                last_plot = time.monotonic()

    with _claimed(run_dir, cfg, is_main), _StopOnInterrupt(interrupt_evaluations=world == 1) as stop:
        if cfg.resume:
            progress = _resume(run_dir, cfg, model, optimizer, scaler, is_main)
        if is_main:
            write_json(run_dir / "config.json", asdict(cfg))

        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=progress.step, unit="step", dynamic_ncols=True,
                   disable=None if is_main else True)
        started = time.perf_counter()
        train_seconds, items_done, out_of_time = 0.0, 0, False
        # The losses stay on the device and are read only at log and eval steps: reading a GPU value
        # every step would make the CPU wait for the GPU, and the GPU then waits for the CPU.
        window_loss, window_steps = torch.zeros((), device=device), 0
        t_mark = time.perf_counter()
        while progress.step < total_steps:
            lr = lr_at(progress.step, cfg, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            model.train()
            for micro in range(cfg.grad_accum):
                batch = batch_at(progress.step * cfg.grad_accum + micro)
                # With DDP, gradients are averaged across processes only on the last micro-batch.
                sync = world == 1 or micro == cfg.grad_accum - 1
                with contextlib.nullcontext() if sync else step_model.no_sync():
                    with autocast(device, amp_dtype):
                        loss, n_items = loss_fn(step_model, batch)
                    scaler.scale(loss / cfg.grad_accum).backward()
                window_loss += loss.detach().float() / cfg.grad_accum
                items_done += n_items * world
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                # Sparse embedding gradients (stage 1) cannot be clipped; the dense ones are.
                dense = [p for p in model.parameters() if p.grad is not None and not p.grad.is_sparse]
                nn.utils.clip_grad_norm_(dense, cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            progress.step += 1
            step = progress.step
            window_steps += 1
            bar.update(1)

            # A time budget ends the run like Ctrl-C does (save, then the caller scores the model).
            if cfg.max_minutes and train_seconds + time.perf_counter() - t_mark >= 60 * cfg.max_minutes:
                if not stop.requested and is_main:
                    bar.write(f"--max_minutes {cfg.max_minutes} reached at step {step}: stopping.")
                stop.requested = out_of_time = True
            # Under DDP every process must stop at the same step: they agree at log steps.
            stopping = stop.requested if world == 1 else (
                step % cfg.log_interval == 0 and distributed.any_process(stop.requested, device))
            # Ctrl-C saves at once; a spent time budget first evaluates, since the last model may be the best.
            is_eval = not (stopping and not out_of_time) and (
                step % eval_interval == 0 or step == total_steps or (stopping and world == 1))
            if not (step % cfg.log_interval == 0 or is_eval or stopping):
                continue
            train_loss = distributed.mean_over_processes(window_loss).item() / window_steps  # a sync point
            train_seconds += time.perf_counter() - t_mark
            window_loss, window_steps = torch.zeros((), device=device), 0
            if not math.isfinite(train_loss):
                progress.history.append({"step": step, "train_loss": train_loss})
                save_records(final=True)
                bar.close()
                kept = f"the last good checkpoint is {last_path}" if last_path.exists() else "none was saved yet"
                raise TrainingDiverged(f"the training loss became {train_loss} at step {step}; {kept}. "
                                       f"Lower --lr (now {cfg.lr}) or --grad_clip, or turn off --amp, and train again.")
            row = {"step": step, "epoch": round(step / steps_per_epoch, 4), "lr": lr, "train_loss": train_loss,
                   "seconds": round(train_seconds, 3), "wall_seconds": round(time.perf_counter() - started, 3)}
            bar.set_postfix(loss=f"{train_loss:.4f}", lr=f"{lr:.2e}",
                            **{f"{item_name}/s": f"{items_done / max(train_seconds, 1e-9):,.0f}"})
            if is_eval and evaluate is not None:
                metrics = _evaluate(model, evaluate, stop, device, amp_dtype)
                stopping = stopping or metrics is None  # None: Ctrl-C cut the evaluation short
                row.update(metrics or {})
                row["wall_seconds"] = round(time.perf_counter() - started, 3)
                shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("val_"))
                if is_main and shown:
                    bar.write(f"step {step}/{total_steps}  train_loss {train_loss:.4f}  {shown}  "
                              f"({row['wall_seconds']:.1f} s)")
            progress.history.append(row)
            if is_eval:
                if evaluate is None:  # nothing to compare: the latest model is the best we know
                    checkpoint(best_path)
                elif sign * row.get(select_by, math.nan) < progress.best_val:
                    progress.best_val = sign * row[select_by]
                    checkpoint(best_path)
                checkpoint(last_path)
                save_records()
            t_mark = time.perf_counter()
            if stopping:
                if not is_eval:
                    checkpoint(last_path)
                if is_main and not out_of_time:
                    bar.write(f"stopped at step {step}; saved {last_path}. "
                              f"Resume with the same command plus --resume.")
                break
        bar.close()
        save_records(final=True)
        if is_main and not best_path.exists():
            checkpoint(best_path)
    interrupted = stop.requested and not out_of_time
    return TrainResult(progress.history, best_path, last_path, train_seconds,
                       items_done / max(train_seconds, 1e-9), interrupted, progress.step, out_of_time)


def _resume(run_dir: Path, cfg: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
            scaler: torch.amp.GradScaler, is_main: bool) -> _Progress:
    """Load the newest intact checkpoint of the run into the model, optimizer, scaler and random generators."""
    path, state = resume_checkpoint(run_dir)
    _restore(state, path, cfg, model, optimizer, scaler)
    _set_rng_state(state["rng"])
    if is_main:
        print(f"resumed from {path} at step {state['step']}")
    return _Progress(state["step"], state["history"], state["best_val"])


def _evaluate(model: nn.Module, evaluate: Callable[[nn.Module], dict[str, float]], stop: _StopOnInterrupt,
              device: torch.device, amp_dtype: torch.dtype | None) -> dict[str, float] | None:
    """evaluate(model) in eval mode without gradients; None when Ctrl-C cut it short."""
    model.eval()
    try:
        with stop.phase("evaluating"), torch.no_grad(), autocast(device, amp_dtype):
            return evaluate(model)
    except _EvaluationInterrupted:
        return None
    finally:
        model.train()


@contextlib.contextmanager
def _claimed(run_dir: Path, cfg: TrainConfig, is_main: bool):
    """The run folder, checked and locked for this run (shared.runs.claim_run_dir) while it trains."""
    if not is_main:
        yield
        return
    claim_run_dir(run_dir, cfg.resume, cfg.overwrite, cfg.name_flag)
    try:
        yield
    finally:
        release_run_dir(run_dir)
