"""The training loop every stage uses: `train(model, optimizer, run, ...)`, one function to read top to bottom.

Each step:
    lr = lr_at(step)                               warmup, then cosine decay (or constant, or 1/sqrt)
    for each of grad_accum micro-batches:
        batch = batch_at(micro_index)              data is a pure function of its index: exact resume
        with autocast: loss = loss_fn(model, batch)
        (loss / grad_accum).backward()
    clip the gradients; optimizer step; zero the gradients
    every log_interval steps: the mean training loss (a NaN ends the run)
    every eval_interval steps and at the end: evaluate, save last.pt (and best.pt when it improves)

The run (shared/run.py) holds what is not the loop: the run folder and its lock, resuming, Ctrl-C and
the --max_minutes budget (both stop the loop after a step, with a checkpoint), DDP under torchrun.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from shared import distributed
from shared.run import TrainConfig, TrainingDiverged, TrainResult, count_params, seed_everything

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "count_params", "lr_at", "make_adamw",
           "seed_everything", "train"]


def make_adamw(model: nn.Module, lr: float, weight_decay: float, device: torch.device,
               betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, norms' gains or 1-d tensors)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    # One fused kernel for the whole update on GPUs and CPUs (faster than foreach on both:
    # bench/stage5_cpu_speed.py); elsewhere (MPS) the multi-tensor foreach update.
    fused = device.type in ("cuda", "cpu")
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


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    run,
    *,
    batch_at: Callable[[int], Any],
    loss_fn: Callable[[nn.Module, Any], tuple[torch.Tensor, int]],
    evaluate: Callable[[nn.Module], dict[str, float]] | None,
    steps_per_epoch: int,
    select_by: str = "val_loss",
    higher_is_better: bool = False,
    extra_state: Mapping[str, Any] | None = None,
    item_name: str = "samples",
    flops_per_item: float = 0.0,
    peak_flops: float = 0.0,
) -> TrainResult:
    """Train `model` (already on run.device) and return what happened.

    run                 a shared.run.Run: the config, the folder, the device, autocast, stopping
    batch_at(i)         the i-th micro-batch, on the model's device; a pure function of i (and the seed)
    loss_fn(model, b)   (mean loss over the batch, number of items in it: samples or tokens)
    evaluate(model)     validation metrics, including `select_by`; called in eval mode, no grad
    steps_per_epoch     optimizer steps per pass over the training data (for --epochs)
    select_by           the validation metric that picks best.pt; lower is better unless higher_is_better
    extra_state         saved in every checkpoint as it is at that moment (a vocabulary, the model's
                        shape, state the stage carries between steps)
    flops_per_item      training FLOPs per item (a GPT: 6N + attention per token) and the machine's
    peak_flops          measured matmul FLOP/s (shared/flops.py): with both, the log shows MFU
    """
    from tqdm.auto import tqdm

    cfg = run.cfg
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    eval_interval = cfg.eval_interval or steps_per_epoch
    scaler = torch.amp.GradScaler(run.device.type, enabled=run.amp_dtype == torch.float16)  # fp16 only
    step_model = distributed.wrap(torch.compile(model) if cfg.compile else model, run.device)  # DDP under torchrun
    sign = -1.0 if higher_is_better else 1.0  # best_val is kept so that lower is better
    extra_state = extra_state or {}

    with run.training():
        step, history, best_val = run.restore(model, optimizer, scaler)
        bar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True,
                   disable=None if run.is_main else True)
        # The losses stay on the device and are read only at log steps: reading a GPU value every
        # step would make the CPU wait for the GPU, and the GPU then wait for the CPU.
        window_loss, window_steps, items = torch.zeros((), device=run.device), 0, 0
        while step < total_steps:
            lr = lr_at(step, cfg, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            model.train()
            for micro in range(cfg.grad_accum):
                batch = batch_at(step * cfg.grad_accum + micro)
                with distributed.sync_gradients(step_model, last_micro_batch=micro == cfg.grad_accum - 1):
                    with run.autocast():
                        loss, n_items = loss_fn(step_model, batch)
                    scaler.scale(loss / cfg.grad_accum).backward()
                window_loss += loss.detach().float() / cfg.grad_accum
                items += n_items * run.world
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

            stopping = run.should_stop(step)  # Ctrl-C, or --max_minutes spent
            # Ctrl-C saves at once; the end of the run, or of its time budget, is evaluated first.
            is_eval = not run.interrupted and (step % eval_interval == 0 or step == total_steps or stopping)
            if not (step % cfg.log_interval == 0 or is_eval or stopping):
                continue
            train_loss = distributed.mean_over_processes(window_loss).item() / window_steps
            window_loss, window_steps = torch.zeros((), device=run.device), 0
            run.check_finite(train_loss, step, history)
            seconds = run.clock.seconds()
            row = {"step": step, "epoch": round(step / steps_per_epoch, 4), "lr": lr, "train_loss": train_loss,
                   "seconds": round(seconds, 3), "wall_seconds": round(run.clock.wall_seconds(), 3)}
            rate = items / max(seconds, 1e-9)
            shown_rate = {f"{item_name}/s": f"{rate:,.0f}"}
            if flops_per_item and peak_flops:  # model FLOPs utilisation: the share of the peak used
                row["mfu"] = round(rate * flops_per_item / peak_flops, 4)
                shown_rate["MFU"] = f"{100 * row['mfu']:.1f}%"
            bar.set_postfix(loss=f"{train_loss:.4f}", lr=f"{lr:.2e}", **shown_rate)
            if is_eval and evaluate is not None:
                metrics = run.evaluate(model, evaluate)
                stopping = stopping or metrics is None  # None: Ctrl-C cut the evaluation short
                row.update(metrics or {}, wall_seconds=round(run.clock.wall_seconds(), 3))
                shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith("val_"))
                if run.is_main and shown:
                    bar.write(f"step {step}/{total_steps}  train_loss {train_loss:.4f}  {shown}  "
                              f"({row['wall_seconds']:.1f} s)")
            history.append(row)
            if is_eval and evaluate is None:  # nothing to compare: the latest model is the best we know
                run.save(run.best_path, model, optimizer, scaler, step, history, best_val, extra_state)
            elif is_eval and sign * row.get(select_by, math.nan) < best_val:
                best_val = sign * row[select_by]
                run.save(run.best_path, model, optimizer, scaler, step, history, best_val, extra_state)
            if is_eval or stopping:
                run.save(run.last_path, model, optimizer, scaler, step, history, best_val, extra_state)
                run.save_history(history)
            if stopping:
                if run.is_main and run.interrupted:
                    bar.write(f"stopped at step {step}; saved {run.last_path}. "
                              f"Resume with the same command plus --resume.")
                break
        bar.close()
        run.save_history(history, final=True)
        if not run.best_path.exists():
            run.save(run.best_path, model, optimizer, scaler, step, history, best_val, extra_state)
    seconds = run.clock.seconds()
    return TrainResult(history, run.best_path, run.last_path, seconds, items / max(seconds, 1e-9),
                       run.interrupted, step, run.out_of_time, item_name)
