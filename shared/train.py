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

from shared.checkpoint import load_checkpoint, save_checkpoint
from shared.cli import ConfigError, UserError, check
from shared.records import plot_history, write_history, write_json


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
    epochs: int = field(default=1, metadata={"help": "passes over the training data (ignored when max_steps > 0)"})
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
    resume: bool = field(default=False, metadata={"help": "continue from <out_dir>/last.pt"})

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

    def run_dir(self, stage: str) -> Path:
        if self.out_dir:
            return Path(self.out_dir)
        name = self.run_name or f"{self.dataset}-{self.preset}" + ("" if self.seed == 1337 else f"-s{self.seed}")
        return Path("runs") / stage / name


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


# --------------------------------------------------------------------------- device and precision


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but CUDA is not available; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("--device mps was asked for but Apple MPS is not available; use --device cpu or auto")
    return torch.device(name)


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for full fp32. auto: bf16 where the GPU has it, else fp16; CPU off."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


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


class _StopOnInterrupt:
    """First Ctrl-C: finish the current step, save, stop. A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> _StopOnInterrupt:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step and saving a checkpoint (Ctrl-C again to abort).",
              file=sys.stderr)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


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
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    step_model = torch.compile(model) if cfg.compile else model
    # Under torchrun every process runs this loop on its own shard of each batch; DDP averages the
    # gradients, and only rank 0 prints and writes files.
    rank, world = distributed_rank_world()
    is_main = rank == 0
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        step_model = DistributedDataParallel(step_model, device_ids=[device.index] if device.type == "cuda" else None)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"

    sign = 1.0 if ("loss" in select_by or "perplexity" in select_by) else -1.0  # we minimise sign * metric
    step, history, best_val = 0, [], math.inf
    if cfg.resume:
        state = load_checkpoint(last_path, required=("model", "optimizer", "step", "rng"))
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        step, history, best_val = state["step"], state["history"], state["best_val"]
        _set_rng_state(state["rng"])
        if is_main:
            print(f"resumed from {last_path} at step {step}")
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "config.json", asdict(cfg))

    def checkpoint(path: Path) -> None:
        if is_main:
            save_checkpoint(path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "step": step, "rng": _rng_state(), "best_val": best_val, "history": history,
                "config": asdict(cfg), **(extra_state or {}),
            })

    def save_records() -> None:
        if is_main:
            write_history(run_dir / "history.csv", history)
            plot_history(run_dir / "curves.png", history, f"{run_dir.parent.name} / {run_dir.name}")

    from tqdm.auto import tqdm

    bar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True, disable=None if is_main else True)
    started = time.perf_counter()
    train_seconds, items_done, interrupted, out_of_time = 0.0, 0, False, False
    # The losses stay on the device and are read only at log and eval steps: reading a GPU value
    # every step would make the CPU wait for the GPU, and the GPU then waits for the CPU.
    window_loss, window_steps = torch.zeros((), device=device), 0
    t_mark = time.perf_counter()
    with _StopOnInterrupt() as stop:
        while step < total_steps:
            lr = lr_at(step, cfg, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            model.train()
            for micro in range(cfg.grad_accum):
                batch = batch_at(step * cfg.grad_accum + micro)
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
            step += 1
            window_steps += 1
            bar.update(1)

            # A time budget ends the run like Ctrl-C does (save, then the caller scores the model).
            if cfg.max_minutes and train_seconds + time.perf_counter() - t_mark >= 60 * cfg.max_minutes:
                if not stop.requested and is_main:
                    bar.write(f"--max_minutes {cfg.max_minutes} reached at step {step}: stopping.")
                stop.requested = out_of_time = True
            stopping = stop.requested
            if world > 1:  # every process must stop at the same step: they agree at log steps
                stopping = False
                if step % cfg.log_interval == 0:
                    flag = torch.tensor(float(stop.requested), device=device)
                    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
                    stopping = bool(flag.item())
            is_eval = step % eval_interval == 0 or step == total_steps or (stopping and world == 1)
            if step % cfg.log_interval == 0 or is_eval or stopping:
                if world > 1:
                    torch.distributed.all_reduce(window_loss)  # the sum over processes (gloo has no AVG)
                    window_loss /= world
                train_loss = window_loss.item() / window_steps  # waits for the device: a sync point
                train_seconds += time.perf_counter() - t_mark
                if not math.isfinite(train_loss):
                    history.append({"step": step, "train_loss": train_loss})
                    save_records()
                    bar.close()
                    kept = (f"the last good checkpoint is {last_path}" if last_path.exists()
                            else "no checkpoint was saved yet")
                    raise TrainingDiverged(
                        f"the training loss became {train_loss} at step {step}; {kept}. "
                        f"Lower --lr (now {cfg.lr}) or --grad_clip, or turn off --amp, and train again."
                    )
                row = {"step": step, "epoch": round(step / steps_per_epoch, 4), "lr": lr, "train_loss": train_loss,
                       "seconds": round(train_seconds, 3), "wall_seconds": round(time.perf_counter() - started, 3)}
                window_loss, window_steps = torch.zeros((), device=device), 0
                bar.set_postfix(loss=f"{train_loss:.4f}", lr=f"{lr:.2e}",
                                **{f"{item_name}/s": f"{items_done / max(train_seconds, 1e-9):,.0f}"})
                if is_eval and evaluate is not None:
                    model.eval()
                    with torch.no_grad(), autocast(device, amp_dtype):
                        row.update(evaluate(model))
                    model.train()
                    row["wall_seconds"] = round(time.perf_counter() - started, 3)
                    shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("val_"))
                    if is_main:
                        bar.write(f"step {step}/{total_steps}  train_loss {train_loss:.4f}  {shown}  "
                                  f"({row['wall_seconds']:.1f} s)")
                history.append(row)
                if is_eval:
                    if evaluate is None:  # nothing to compare: the latest model is the best we know
                        checkpoint(best_path)
                    elif sign * row.get(select_by, math.nan) < best_val:
                        best_val = sign * row[select_by]
                        checkpoint(best_path)
                    checkpoint(last_path)
                    save_records()
                t_mark = time.perf_counter()
            if stopping:
                if not is_eval:  # a distributed stop lands on a log step: save there
                    checkpoint(last_path)
                interrupted = not out_of_time
                if is_main and interrupted:
                    bar.write(f"stopped at step {step}; saved {last_path}. "
                              f"Resume with the same command plus --resume.")
                break
    bar.close()
    save_records()
    if is_main and not best_path.exists():
        checkpoint(best_path)
    return TrainResult(history, best_path, last_path, train_seconds,
                       items_done / max(train_seconds, 1e-9), interrupted, step, out_of_time)


def distributed_rank_world() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless running under torchrun with a process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochBatches:
    """Shuffled mini-batches as a pure function of the batch index, so a resumed run sees the same data.

    Batch i belongs to epoch i // steps_per_epoch; each epoch has its own permutation, drawn from a
    generator seeded with (seed, epoch). The last, smaller batch of an epoch is kept.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int):
        if n_items < 1:
            raise UserError("the training split is empty; check the data set and its filters.")
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.steps_per_epoch = math.ceil(n_items / batch_size)
        self._epoch, self._perm = -1, None

    def indices(self, i: int) -> torch.Tensor:
        epoch, k = divmod(i, self.steps_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n_items, generator=generator)
        return self._perm[k * self.batch_size:(k + 1) * self.batch_size]
