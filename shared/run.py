"""A training run's life, around the loop: what `shared.train.train` leans on and a learner can skip.

    run = Run.start(STAGE, GPTTrainConfig, PRESETS, argv, "Pretrain a GPT.")   parse the flags, check the
                                                  run folder, your parts (--yours), seed, device, precision
    ... the stage builds its data and model ...
    result = train(model, optimizer, run, ...)    the loop (shared/train.py); it asks the run to
                                                  claim and lock the folder, resume, decide when to stop,
                                                  save checkpoints and the history
    run.record(result, task=..., model_name=..., **scores)    the one writer of metrics.json

The run folder is runs/<stage>/<run_name>/ (see shared/runs.py for what may be written there):
config.json, history.csv, curves.png, last.pt and best.pt, metrics.json. A checkpoint holds what an
exact resume needs: the weights, the optimizer, the step, every random generator's state, the history,
the config, and what the stage adds (`extra_state`: its vocabulary, the model's shape, ...).
"""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from shared import distributed
from shared.checkpoint import resume_checkpoint, save_checkpoint
from shared.cli import ConfigError, UserError, check, parse_config
from shared.devices import amp_name, autocast, describe_amp, resolve_amp
from shared.own_data import dataset_slug
from shared.records import command_for, plot_history, write_history, write_json, write_metrics
from shared.runs import check_run_dir, claim_run_dir, release_run_dir


@dataclass(frozen=True)
class TrainConfig:
    """The flags every stage shares. A stage's config subclasses this and adds its own fields."""

    preset: str = "cpu"
    dataset: str = ""
    seed: int = field(default=1337, metadata={"help": "seeds init, data order and dropout"})
    device: Literal["auto", "cpu", "cuda", "mps"] = field(default="auto", metadata={"help": "auto: cuda > mps > cpu"})
    amp: Literal["auto", "bf16", "fp16", "off"] = field(
        default="auto", metadata={"help": "mixed precision; auto: bf16 (or fp16 + GradScaler) on CUDA, bf16 on "
                                          "CPUs with native bf16 (AVX512-BF16, AMX, Arm BF16), off elsewhere"})
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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# Settings that may change when a run is resumed (how long, how often, where it runs); any other
# difference from the saved config is named when the checkpoint does not fit.
RESUMABLE_CHANGES = {"resume", "overwrite", "max_steps", "epochs", "max_minutes", "eval_interval", "log_interval",
                     "device", "amp", "compile", "out_dir", "run_name"}


@dataclass
class TrainResult:
    """What the loop hands back: the history, where the checkpoints are, how long and how fast it ran."""

    history: list[dict[str, float]]
    best_path: Path
    last_path: Path
    train_seconds: float
    items_per_sec: float
    interrupted: bool  # Ctrl-C
    steps: int
    out_of_time: bool = False  # stopped by --max_minutes
    item_name: str = "samples"


class Run:
    """One training run: its config, folder, device, precision, process rank, learner's parts and record."""

    def __init__(self, stage: str, cfg: TrainConfig, argv: Sequence[str] | None = None, module: str = "",
                 device: torch.device | None = None):
        from shared.check import with_yours

        self.stage, self.command = stage, command_for(module or f"{stage}.train", argv)
        self.device = device or distributed.setup(cfg.device)  # under torchrun: join the process group
        self.rank, self.world = distributed.rank_world()
        self.is_main = self.rank == 0
        self.dir = cfg.checked_run_dir(stage)  # a run already there is refused now, not after the data is ready
        self.cfg, self.yours = with_yours(cfg, stage)  # --yours: your parts from yours.py, by name
        self.amp_dtype = resolve_amp(self.cfg.amp, self.device)
        self.amp_name = amp_name(self.amp_dtype)
        self.amp_note = describe_amp(self.cfg.amp, self.device, self.amp_dtype)  # for the run's first line
        if self.cfg.compile and self.device.type == "cpu" and not any(
                shutil.which(c) for c in ("c++", "g++", "clang++")):
            raise ConfigError("--compile on a CPU builds C++ kernels, and no C++ compiler (g++ or clang++) was "
                              "found; install one, or train without it: --no-compile.")
        self.last_path, self.best_path = self.dir / "last.pt", self.dir / "best.pt"
        self._resumed: dict[str, Any] | None = None
        self.out_of_time = False  # set by should_stop when --max_minutes is spent
        seed_everything(self.cfg.seed)

    @classmethod
    def start(cls, stage: str, config_cls: type, presets: Mapping[str, Any], argv: Sequence[str] | None,
              description: str, module: str = "") -> Run:
        """Parse a train command's flags (unknown or invalid ones: one sentence, exit 2) and start its run."""
        module = module or f"{stage}.train"
        cfg = parse_config(config_cls, presets, argv, prog=f"python -m {module}", description=description)
        return cls(stage, cfg, argv, module)

    def autocast(self):
        """Mixed precision for a forward pass (--amp), or nothing in fp32."""
        return autocast(self.device, self.amp_dtype)

    @property
    def resumed(self) -> dict[str, Any] | None:
        """With --resume, the checkpoint the run continues from (read once); None otherwise."""
        if self.cfg.resume and self._resumed is None:
            path, self._resumed = resume_checkpoint(self.dir)
            self._resumed["path"] = str(path)
        return self._resumed

    # ------------------------------------------------------------------ what the loop calls

    @contextlib.contextmanager
    def training(self):
        """While the loop runs: the folder claimed and locked (rank 0), Ctrl-C handled."""
        with contextlib.ExitStack() as stack:
            if self.is_main:
                claim_run_dir(self.dir, self.cfg.resume, self.cfg.overwrite, self.cfg.name_flag)
                stack.callback(release_run_dir, self.dir)
            self.interrupt = stack.enter_context(StopOnInterrupt(interrupt_evaluations=self.world == 1))
            self.clock, self._last_plot = Stopwatch(), -math.inf
            yield self

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler) -> tuple[int, list[dict[str, float]], float]:
        """With --resume: the checkpoint's weights, optimizer, scaler and random generators put back;
        returns (step, history, best value so far). Without: (0, [], inf). Then config.json is written."""
        state = self.resumed
        if state is not None:
            self._load_training_state(state, model, optimizer, scaler)  # a refusal leaves the run as it was
        if self.is_main:
            write_json(self.dir / "config.json", asdict(self.cfg))
        self.clock = Stopwatch()  # training time starts now
        if state is None:
            return 0, [], math.inf
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate((3, tuple(state["rng"]["python"]), None))
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        if self.is_main:
            print(f"resumed from {state['path']} at step {state['step']}")
        return state["step"], state["history"], state["best_val"]

    def _load_training_state(self, state: dict, model: nn.Module, optimizer: torch.optim.Optimizer,
                             scaler: torch.amp.GradScaler) -> None:
        """The saved weights and optimizer into this run's, or one sentence naming the setting that differs."""
        cfg, path = self.cfg, state["path"]
        saved, now = state.get("config") or {}, asdict(cfg)
        changed = [f"--{k} {saved[k]!r} (now {now[k]!r})" for k in now
                   if k in saved and k not in RESUMABLE_CHANGES and saved[k] != now[k]]
        where = f"start a new run with another {cfg.name_flag}"
        if saved.get("dataset", cfg.dataset) != cfg.dataset:
            raise UserError(f"cannot resume {path}: it was trained on --dataset {saved['dataset']}, not "
                            f"{cfg.dataset}; resume with --dataset {saved['dataset']}, or {where}.")
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            if changed:
                raise UserError(f"cannot resume {path}: these settings differ from the saved run: "
                                f"{', '.join(changed)}; resume with the saved settings, or {where}.") from None
            raise UserError(f"cannot resume {path}: the saved model does not fit this one "
                            f"({str(err).splitlines()[0][:120]}); {where}.") from None
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])

    def should_stop(self, step: int) -> bool:
        """Ctrl-C, or the --max_minutes budget spent. Under DDP every process must stop at the same
        step, so they agree at log steps."""
        cfg = self.cfg
        if cfg.max_minutes and not self.out_of_time and self.clock.seconds() >= 60 * cfg.max_minutes:
            self.out_of_time = True
            if self.is_main:
                print(f"--max_minutes {cfg.max_minutes} reached at step {step}: stopping.", file=sys.stderr)
        if self.world == 1:
            return self.interrupt.requested or self.out_of_time
        if step % cfg.log_interval:
            return False
        self.out_of_time = distributed.any_process(self.out_of_time, self.device)
        return distributed.any_process(self.interrupt.requested, self.device) or self.out_of_time

    @property
    def failing_parts(self) -> list[str]:
        """Your parts (--yours) that do not pass their check: recorded, marked in the report, named on a NaN."""
        return self.yours.failing

    @property
    def interrupted(self) -> bool:
        return self.interrupt.requested and not self.out_of_time

    def check_finite(self, train_loss: float, step: int, history: list[dict[str, float]]) -> None:
        """A NaN or infinite loss ends the run with one sentence; the last good checkpoint stays."""
        if math.isfinite(train_loss):
            return
        history.append({"step": step, "train_loss": train_loss})
        self.save_history(history, final=True)
        kept = f"the last good checkpoint is {self.last_path}" if self.last_path.exists() else "none was saved yet"
        if self.failing_parts:  # the likelier cause: a part of the learner's that fails its check
            names = ", ".join(self.failing_parts)
            raise TrainingDiverged(f"the training loss became {train_loss} at step {step} with your {names}, which "
                                   f"does not pass its check; {kept}. Fix it (python -m shared.check "
                                   f"{self.stage.split('_')[0]}) and train again.")
        raise TrainingDiverged(f"the training loss became {train_loss} at step {step}; {kept}. "
                               f"Lower --lr (now {self.cfg.lr}) or --grad_clip, or turn off --amp, and train again.")

    def evaluate(self, model: nn.Module, evaluate: Callable[[nn.Module], dict[str, float]]) -> dict[str, float] | None:
        """evaluate(model) in eval mode, without gradients, under autocast; None when Ctrl-C cut it short."""
        model.eval()
        try:
            with self.clock.paused(), self.interrupt.phase("evaluating"), torch.no_grad(), self.autocast():
                return evaluate(model)
        except EvaluationInterrupted:
            return None
        finally:
            model.train()

    def save(self, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
             step: int, history: list[dict[str, float]], best_val: float, extra_state: Mapping[str, Any]) -> None:
        """A checkpoint with all an exact resume needs (rank 0 writes; a second Ctrl-C waits for it)."""
        if not self.is_main:
            return
        rng = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        with self.clock.paused(), self.interrupt.phase("saving"):
            save_checkpoint(path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None, "step": step, "rng": rng,
                "best_val": best_val, "history": history, "config": asdict(self.cfg), **extra_state,
            })

    def save_history(self, history: list[dict[str, float]], final: bool = False) -> None:
        """history.csv at every evaluation; curves.png (a slower drawing) at most every 30 s and at the end."""
        if not self.is_main:
            return
        with self.clock.paused():
            write_history(self.dir / "history.csv", history)
            if final or time.monotonic() - self._last_plot > 30:
                plot_history(self.dir / "curves.png", history, f"{self.dir.parent.name} / {self.dir.name}")
                self._last_plot = time.monotonic()

    # ------------------------------------------------------------------ after training

    def record(self, result: TrainResult, *, task: str, model_name: str, params: int, dataset: str = "",
               **fields: Any) -> dict[str, Any]:
        """metrics.json, the one run record `python -m shared.report` reads: what ran (stage, task, model,
        data, preset, seed, your parts), on what and how fast, the stage's scores, and the command."""
        rate = result.items_per_sec
        record = {
            "stage": self.stage, "yours": sorted(self.yours), "yours_failing": self.failing_parts, "task": task,
            "model": model_name,
            "dataset": dataset or self.cfg.dataset, "preset": self.cfg.preset, "seed": self.cfg.seed,
            "params": params, "device": str(self.device), "steps": result.steps,
            "train_seconds": round(result.train_seconds, 2),
            f"{result.item_name}_per_sec": round(rate) if result.item_name == "tokens" else round(rate, 1),
            "interrupted": result.interrupted, "out_of_time": result.out_of_time, "amp": self.amp_name,
            **fields, "command": self.command,
        }
        return write_metrics(self.dir, record)

    def close(self) -> None:
        distributed.teardown()


class Stopwatch:
    """Training time: runs from its start, except inside `paused()` (evaluations, checkpoints)."""

    def __init__(self) -> None:
        self._start, self._paused_for = time.perf_counter(), 0.0

    def seconds(self) -> float:
        return self.wall_seconds() - self._paused_for

    def wall_seconds(self) -> float:
        return time.perf_counter() - self._start

    @contextlib.contextmanager
    def paused(self):
        began = time.perf_counter()
        try:
            yield
        finally:
            self._paused_for += time.perf_counter() - began


class EvaluationInterrupted(KeyboardInterrupt):
    """Ctrl-C during an evaluation: the loop skips the rest of it, saves and stops."""


class StopOnInterrupt:
    """Ctrl-C during training: finish the current step, save, stop. During an evaluation: stop the
    evaluation at once, save, stop. A second Ctrl-C aborts, but never in the middle of writing a
    checkpoint: it takes effect once the file is complete."""

    def __init__(self, interrupt_evaluations: bool) -> None:
        self.requested = self.evaluating = self.saving = self.abort_after_save = False
        self.interrupt_evaluations = interrupt_evaluations
        self._previous = None

    def __enter__(self) -> StopOnInterrupt:
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
            raise EvaluationInterrupted
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
