"""Typed command lines from frozen dataclasses, and one clear sentence for every user error.

Every stage's config is a frozen dataclass. `parse_config` turns each field into a typed flag
(`--batch_size 64`, `--compile/--no-compile`), applies a named preset first and the flags on top,
and rejects unknown flags and invalid values with exit status 2 and a single sentence.
`run_main` wraps a stage's `main` so that a `UserError` (missing data, corrupt checkpoint, NaN
loss, ...) prints one sentence and exits 1 instead of a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar, get_args, get_origin

C = TypeVar("C")


class UserError(Exception):
    """Something the user can fix (bad input, missing data, ...). Its message is the whole story."""


class ConfigError(UserError, ValueError):
    """An invalid config value; raised from a config's `__post_init__`."""


def check(condition: bool, message: str) -> None:
    """Config validation helper: `check(self.lr > 0, "--lr must be positive")`."""
    if not condition:
        raise ConfigError(message)


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one sentence (no usage dump) and exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        if message.startswith("unrecognized arguments"):
            message = f"unknown flag(s): {message.split(':', 1)[1].strip()}"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help for the flags).\n")


def _field_type(dc_field: dataclasses.Field, hints: Mapping[str, Any]) -> Any:
    tp = hints[dc_field.name]
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):  # Optional[X] -> X
        args = [a for a in get_args(tp) if a is not type(None)]
        tp = args[0]
    return tp


def _converter(name: str, tp: Any) -> tuple[Callable[[str], Any], list[str] | None]:
    if get_origin(tp) is Literal:
        choices = [str(c) for c in get_args(tp)]
        return str, choices
    if tp in (int, float, str):
        def convert(text: str, tp=tp) -> Any:
            try:
                return tp(text)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"--{name} takes {'an integer' if tp is int else 'a number'}, not {text!r}"
                ) from None
        return convert, None
    raise TypeError(f"config field {name} has unsupported type {tp!r}")


def derived(default: Any = 0, help: str = "") -> Any:
    """A config field the program sets (a vocabulary size read off the data), not a command-line flag."""
    return dataclasses.field(default=default, metadata={"flag": False, "help": help})


def model_config(cls: type[C], cfg: Any, **derived_values: Any) -> C:
    """The model's config built from a training config that inherits its fields: every field of `cls`
    is read from `cfg` by name, except the derived ones given here (e.g. vocab_size=len(vocab))."""
    values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls) if f.name not in derived_values}
    return cls(**values, **derived_values)


def build_parser(cls: type, presets: Mapping[str, Mapping[str, Any]], prog: str, description: str = "") -> _Parser:
    parser = _Parser(prog=prog, description=description, allow_abbrev=False,
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hints = typing.get_type_hints(cls)
    if presets:
        parser.add_argument("--preset", choices=list(presets), default=argparse.SUPPRESS,
                            help="named preset; chosen by device when not given (gpu on CUDA, else cpu)")
    for f in dataclasses.fields(cls):
        if not f.init or f.name == "preset" or f.metadata.get("flag") is False:
            continue
        tp = _field_type(f, hints)
        help_text = f.metadata.get("help", "")
        if tp is bool:
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_text)
            continue
        convert, choices = _converter(f.name, tp)
        parser.add_argument(f"--{f.name}", type=convert, choices=choices, default=argparse.SUPPRESS,
                            metavar=None if choices else tp.__name__.upper(), help=help_text)
    return parser


def default_preset(presets: Mapping[str, Any]) -> str:
    """`gpu` when CUDA is available and the stage has a gpu preset, else `cpu`."""
    import torch

    if "gpu" in presets and torch.cuda.is_available():
        return "gpu"
    return "cpu" if "cpu" in presets else next(iter(presets))


def parse_config(cls: type[C], presets: Mapping[str, Mapping[str, Any]], argv: Sequence[str] | None = None,
                 prog: str | None = None, description: str = "") -> C:
    """Parse `argv` into a frozen `cls`: defaults, then the preset, then the explicit flags.

    A preset may hold `by_<field>` tables: settings that apply on top of it for one value of that
    field, e.g. `by_dataset` (small data sets want more epochs and less regularisation than large
    ones) or `by_vocab_type` (word-level models want another data set and shape). They apply in the
    order written, each looking at the field's value so far; explicit flags still win.

    Invalid values exit 2 with one sentence (the message of the ConfigError raised in
    `__post_init__`).
    """
    parser = build_parser(cls, presets, prog or cls.__module__.rsplit(".", 1)[0], description)
    given = vars(parser.parse_args(list(sys.argv[1:] if argv is None else argv)))
    values: dict[str, Any] = {}
    if presets:
        preset = given.pop("preset", None) or default_preset(presets)
        settings = dict(presets[preset])
        tables = {key.removeprefix("by_"): settings.pop(key) for key in list(settings) if key.startswith("by_")}
        values.update(settings)
        for name, table in tables.items():
            current = given.get(name, values.get(name, getattr(cls, name, None)))
            values.update(table.get(current, {}))
        if "preset" in {f.name for f in dataclasses.fields(cls)}:
            values["preset"] = preset
        # A preset that counts steps would silently ignore an explicit --epochs: the user's flag wins.
        if "epochs" in given and "max_steps" not in given and values.get("max_steps"):
            values["max_steps"] = 0
    values.update(given)
    try:
        return cls(**values)
    except ConfigError as err:
        parser.error(str(err))


def first_positional_as(flag: str, argv: Sequence[str] | None, cls: type) -> list[str]:
    """Let a command take its main text positionally: `cmd "some text" --x 1` == `cmd --flag "some text" --x 1`.

    The text may also come after the flags (`cmd --x 1 "some text"`): a word that no flag takes as its
    value (the config class `cls` says which flags are on/off switches) is the text.
    """
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw and not raw[0].startswith("--"):
        return [flag, raw[0], *raw[1:]]
    switches = {"-h", "--help"}
    for f in dataclasses.fields(cls):
        if f.type in (bool, "bool"):
            switches |= {f"--{f.name}", f"--no-{f.name}"}
    i = 0
    while i < len(raw):
        if not raw[i].startswith("-"):  # no flag asked for this word: the text
            return [flag, raw[i], *raw[:i], *raw[i + 1:]]
        i += 1 if "=" in raw[i] or raw[i] in switches else 2
    return raw


def config_from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
    """Rebuild a config saved in a checkpoint, ignoring keys an older/newer version does not know."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return cls(**{k: v for k, v in data.items() if k in names})


def run_main(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> None:
    """Run a command-line `main`; a UserError becomes one sentence on stderr and exit status 1."""
    # Ctrl-C (SIGINT) stops every command, even one started in the background by a script, where the
    # shell would otherwise have it ignored; the training loop handles it its own way while it trains.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except OSError as err:  # a file-system failure no command anticipated: still one sentence
        where = f" ({err.filename})" if err.filename else ""
        print(f"error: {err.strerror or err}{where}; check the path, its permissions and the free disk space.",
              file=sys.stderr)
        sys.exit(1)
    except Exception as err:
        # Ctrl-C while a C extension was being imported surfaces as that import's error, the
        # KeyboardInterrupt only in its context: the same stop as a plain Ctrl-C.
        if not _caused_by_interrupt(err):
            raise
        _interrupted()
    except KeyboardInterrupt:
        _interrupted()


def _caused_by_interrupt(err: BaseException | None) -> bool:
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def _interrupted() -> None:
    print("\ninterrupted; files already written are kept (a training run continues with --resume).",
          file=sys.stderr)
    sys.exit(130)
