"""Check your own implementation of a stage's parts: `python -m shared.check stage4` (or `make check STAGE=4`).

Each stage has a stub file, `stageN_x/yours.py`: the functions and classes to write, each with its
signature, its shapes, its equation and `raise NotImplementedError`. The stage's `checks.py` knows,
for every part, how to test it: against the stage's own reference code (model.py) and, where one
exists, against PyTorch's module (nn.LSTM, nn.MultiheadAttention, F.scaled_dot_product_attention),
on random inputs with fixed seeds, values and gradients. This command prints one line per part:

    passed                the part agrees with the reference
    not implemented yet   it still raises NotImplementedError
    wrong: ...            the first thing that differs (a shape, the largest difference and where, a
                          masked position that leaked, a gradient), then a one-line hint

and exits 0 only when every part passes. It only reads your file. Then
`python -m stageN_x.train --yours` trains the real model built with your parts: each stage's model.py
has a `Parts` dataclass (the reference by default), and `Parts(**yours)` puts yours in its place.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from shared.cli import UserError, parse_config, run_main
from shared.data_registry import REPO_ROOT

STAGES = {"1": "stage1_mlp", "2": "stage2_rnn_lstm", "3": "stage3_attention_seq2seq", "4": "stage4_transformer",
          "5": "stage5_gpt", "6": "stage6_finetune_cls",
          "7": "stage7_instruct"}


class Wrong(Exception):
    """A part gives a result other than the reference's; the message says what differs."""


@dataclass(frozen=True)
class Part:
    """One thing to write in yours.py: its name there, the check, and a hint shown when it is wrong."""

    name: str
    check: Callable[[Any], None]  # raises Wrong (or NotImplementedError) when given your function/class
    hint: str
    uses: tuple[str, ...] = ()  # your other parts this one calls: when one of them is wrong, that is the hint


# --------------------------------------------------------------------------- comparing results


def same(what: str, expected: torch.Tensor, got: Any, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Raise Wrong unless `got` is a tensor of the expected shape and values (within tolerance)."""
    if not isinstance(got, torch.Tensor):
        raise Wrong(f"{what}: expected a tensor of shape {tuple(expected.shape)}, got {type(got).__name__}")
    if got.shape != expected.shape:
        raise Wrong(f"{what}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    if got.dtype != expected.dtype:  # a float64 part passes here, then the model fails on mixed dtypes
        raise Wrong(f"{what}: expected dtype {expected.dtype}, got {got.dtype} (keep the dtype of the inputs)")
    expected, got = expected.detach().double(), got.detach().double()
    if torch.isnan(got).any() and not torch.isnan(expected).any():
        where = tuple(torch.nonzero(torch.isnan(got))[0].tolist())
        raise Wrong(f"{what}: NaN at {list(where)}")
    # Infinite entries first: the tolerance below is infinite there, so any value would pass.
    infinite = torch.isinf(expected) | torch.isinf(got)
    wrong_inf = infinite & (expected != got)
    if wrong_inf.any():
        where = tuple(torch.nonzero(wrong_inf)[0].tolist())
        raise Wrong(f"{what}: expected {expected[where].item():.4g}, got {got[where].item():.4g} at {list(where)}")
    expected, got = expected.masked_fill(infinite, 0.0), got.masked_fill(infinite, 0.0)
    diff = (expected - got).abs().nan_to_num(nan=0.0)
    bad = diff > atol + rtol * expected.abs()
    if bad.any():
        where = tuple(torch.nonzero(diff == diff.max())[0].tolist())
        raise Wrong(f"{what}: values differ, largest difference {diff.max().item():.3g} at {list(where)} "
                    f"(expected {expected[where].item():.4f}, got {got[where].item():.4f})")


def same_or_named(what: str, expected: torch.Tensor, got: Any, mistakes: Sequence[tuple[str, torch.Tensor]],
                  atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """same(), and when it fails, whether `got` is what a known mistake computes (each mistake's result
    computed by the check): "values differ" then also says what was most likely done."""
    try:
        same(what, expected, got, atol, rtol)
    except Wrong as err:
        for says, wrong in mistakes:
            if isinstance(got, torch.Tensor) and got.shape == wrong.shape and torch.allclose(
                    got.detach().double(), wrong.detach().double(), atol=atol, rtol=rtol):
                raise Wrong(f"{err}: {says}") from None
        raise


def same_grads(what: str, expected: Sequence[torch.Tensor], got: Sequence[torch.Tensor], names: Sequence[str],
               atol: float = 1e-4) -> None:
    """Compare the gradients of the same inputs/parameters after the reference's and your backward."""
    for name, e, g in zip(names, expected, got):
        if g is None:
            raise Wrong(f"{what}: no gradient reaches {name} (is it detached, or not used?)")
        same(f"{what}, the gradient of {name}", e, g, atol=atol, rtol=1e-3)


def leaked(what: str, weights: torch.Tensor, masked: torch.Tensor) -> None:
    """Attention weights must be exactly 0 where `masked` is True (padding, or the future)."""
    if not isinstance(weights, torch.Tensor) or weights.shape != masked.shape:
        return  # the shape check elsewhere reports it
    leak = (weights.detach().abs() > 1e-6) & masked
    if leak.any():
        where = tuple(torch.nonzero(leak)[0].tolist())
        raise Wrong(f"{what}: a masked position leaked: weight {weights[where].item():.4f} at {list(where)}, "
                    f"where the mask says 0")


def seeded(seed: int = 0) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- loading your file


def stage_name(text: str) -> str:
    """'4', 'stage4', 'stage4_transformer' -> 'stage4_transformer'."""
    key = text.removeprefix("stage").split("_")[0]
    if key not in STAGES:
        raise UserError(f"unknown stage {text!r}; give one of 1-7 (e.g. stage4 or 4).")
    return STAGES[key]


def default_file(stage: str) -> Path:
    return REPO_ROOT / stage / "yours.py"


def _where_in(path: Path, err: BaseException) -> str:
    """'line N' of the deepest traceback frame inside `path`, or ''."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    return f"line {frames[-1].lineno}" if frames else ""


def load_yours(stage: str, file: str | Path | None = None) -> tuple[ModuleType, Path]:
    """Import your file as a module without changing it (no bytecode is written beside it)."""
    path = Path(file) if file else default_file(stage)
    if not path.is_file():
        raise UserError(f"{path} does not exist; the stage's stub file is {default_file(stage)} (or give --file PATH).")
    spec = importlib.util.spec_from_file_location(f"_yours_{stage}", path)
    module = importlib.util.module_from_spec(spec)
    previous, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise UserError(f"{path} line {err.lineno}: {err.msg}; fix it and run the check again.") from None
    except Exception as err:
        raise UserError(f"{path} {_where_in(path, err)}: importing it raised {type(err).__name__}: {err}; "
                        f"fix it and run the check again.") from None
    finally:
        sys.dont_write_bytecode = previous
    return module, path


def stage_parts(stage: str) -> list[Part]:
    return importlib.import_module(f"{stage}.checks").PARTS


# --------------------------------------------------------------------------- running the checks


@dataclass
class Result:
    part: str
    status: str  # passed | not implemented yet | missing | wrong
    detail: str = ""


def check_part(part: Part, module: ModuleType, path: Path) -> Result:
    obj = getattr(module, part.name, None)
    if obj is None:
        return Result(part.name, "missing", f"{path.name} has no {part.name}; the stub file defines it, keep its name")
    try:
        with torch.random.fork_rng():
            part.check(obj)
    except NotImplementedError as err:
        raised_in = traceback.extract_tb(err.__traceback__)[-1].name
        if raised_in != part.name and Path(traceback.extract_tb(err.__traceback__)[-1].filename) == path:
            return Result(part.name, "wrong", f"it calls {raised_in}, which is not implemented yet")
        return Result(part.name, "not implemented yet")
    except Wrong as err:
        return Result(part.name, "wrong", str(err))
    except Exception as err:  # the learner's code raised: say where in their file
        where = _where_in(path, err)
        message = str(err).splitlines()[0] if str(err) else ""
        return Result(part.name, "wrong", f"it raised {type(err).__name__}: {message}"
                                          f"{f' ({path.name} {where})' if where else ''}")
    return Result(part.name, "passed")


def run_checks(stage: str, module: ModuleType, path: Path, only: Sequence[str] = ()) -> list[Result]:
    parts = [p for p in stage_parts(stage) if not only or p.name in only]
    return [check_part(p, module, path) for p in parts]


def shown(path: Path) -> str:
    """The path as the learner would type it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def report(stage: str, path: Path, results: list[Result], parts: list[Part]) -> str:
    hints = {p.name: p.hint for p in parts}
    wrong = {r.part for r in results if r.status == "wrong"}
    for p in parts:
        failing = [name for name in p.uses if name in wrong]
        if failing:  # the fault is upstream: pointing at this part's own code would send the learner the wrong way
            hints[p.name] = (f"it calls your {', '.join(failing)}, which fails its own check above: "
                             f"fix that first, then check again")
    width = max(len(r.part) for r in results) + 2
    lines = [shown(path)]
    for r in results:
        line = f"  {r.part:<{width}}{r.status}"
        if r.detail:
            line += f": {r.detail}"
        lines.append(line)
        if r.status == "wrong":
            lines.append(f"  {'':<{width}}hint: {hints[r.part]}")
    todo = sum(r.status != "passed" for r in results)
    short = stage.split("_")[0]
    other_file = path.resolve() != default_file(stage).resolve()
    check_again = f"python -m shared.check {short}" + (f" --file {shown(path)}" if other_file else "")
    train = f"python -m {stage}.train --yours" + (f" --yours_file {shown(path)}" if other_file else "")
    if todo:
        lines.append(f"{todo} of {len(results)} parts to go: edit {shown(path)} and run {check_again} again")
    elif len(results) < len(parts):  # --part: the others were not looked at
        checked = ", ".join(r.part for r in results)
        lines.append(f"{checked} passes; the other parts were not checked: {check_again}")
    else:
        lines.append(f"all {len(results)} parts pass: train with them, {train}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- --yours: train with your parts


class YourParts(dict):
    """Your parts by name, and `failing`: the ones that do not pass their check (trained with anyway)."""

    def __init__(self, parts: dict[str, Callable], failing: Sequence[str] = ()) -> None:
        super().__init__(parts)
        self.failing = sorted(failing)


def use_yours(stage: str, file: str | Path | None = None, doing: str = "training") -> YourParts:
    """Your implemented parts (passed or wrong) by name, read from your file; parts still raising
    NotImplementedError are left out, so the model keeps the reference for them. Says which is which.
    The caller builds the model with them: `Parts(**yours)` in the stage's model.py."""
    module, path = load_yours(stage, file)
    results = run_checks(stage, module, path)
    mine = [r.part for r in results if r.status in ("passed", "wrong")]
    if not mine:
        raise UserError(f"none of the parts in {path} is implemented yet; write one, check it with "
                        f"python -m shared.check {stage.split('_')[0]}, then train with --yours.")
    for r in results:
        if r.status == "wrong":
            print(f"warning: your {r.part} does not pass its check ({r.detail}); {doing} with it anyway.")
    rest = [r.part for r in results if r.part not in mine]
    print(f"--yours: {doing} with your {', '.join(mine)}" + (f"; the reference {', '.join(rest)} "
                                                             f"(not written yet)" if rest else ""))
    return YourParts({name: getattr(module, name) for name in mine}, [r.part for r in results if r.status == "wrong"])


def yours_settings(stage: str) -> dict[str, Any]:
    """The settings that run the learner's code, from the stage's checks.py (e.g. {"fast": False}:
    the cells written out in Python, which call your cells, instead of nn.LSTM)."""
    return importlib.import_module(f"{stage}.checks").YOURS_SETTINGS


def with_yours(cfg: Any, stage: str) -> tuple[Any, YourParts]:
    """For a train command: (cfg, {}) without --yours; with it, cfg with the settings that run your
    code (the stage's checks.YOURS_SETTINGS) and your parts by name (use_yours), for the model to be
    built with: `Parts(**yours)`. metrics.json records `sorted(yours)`."""
    if not cfg.yours:
        return cfg, YourParts({})
    yours = use_yours(stage, cfg.yours_file or None)
    return dataclasses.replace(cfg, **yours_settings(stage)), yours


@dataclass(frozen=True)
class CheckConfig:
    stage: str = field(default="", metadata={"help": "which stage: 1-7, stage4, or stage4_transformer"})
    file: str = field(default="", metadata={"help": "the file to check; default the stage's yours.py"})
    part: str = field(default="", metadata={"help": "check only this part"})


def main(argv: Sequence[str] | None = None) -> int:
    from shared.cli import first_positional_as

    raw = first_positional_as("--stage", argv, CheckConfig)
    cfg = parse_config(CheckConfig, {}, raw, prog="python -m shared.check",
                       description="Check your own implementation of a stage's parts against the reference.")
    if not cfg.stage:
        raise UserError("say which stage to check, e.g. python -m shared.check stage4")
    stage = stage_name(cfg.stage)
    module, path = load_yours(stage, cfg.file or None)
    parts = stage_parts(stage)
    if cfg.part and cfg.part not in {p.name for p in parts}:
        raise UserError(f"{stage} has no part {cfg.part!r}; its parts are {', '.join(p.name for p in parts)}.")
    results = run_checks(stage, module, path, [cfg.part] if cfg.part else ())
    print(report(stage, path, results, parts))
    return 0 if all(r.status == "passed" for r in results) else 1


def cli(argv: Sequence[str] | None = None) -> None:
    sys.exit(main(argv))


if __name__ == "__main__":
    # Run the imported module's cli, not this __main__ copy: the stages' checks raise shared.check.Wrong.
    from shared.check import cli as _cli

    run_main(_cli)
