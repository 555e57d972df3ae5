"""Run folders and the files in them: nothing a learner trained is ever silently lost.

    claim_run_dir(run_dir, resume, overwrite)
        Called by the training loop before it writes anything. The folder must be one we can write
        (not a file, not under a file, not read-only). A run already in it is never replaced unless
        --resume (continue it) or --overwrite (replace it) says so. A lock file (`.lock`, holding the
        process id) stops a second live run in the same folder; a lock left by a killed process is
        taken over. Temporary files left by a save that was killed half-way are removed.

    atomic_write(path)
        Every checkpoint and record is written to a temporary file beside its target and renamed
        over it, so a crash, a kill or a full disk never leaves half a file where a good one was.
        Files get the permissions the user's umask gives (0644 for most users).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from shared.cli import UserError

# What a train command writes into its folder; their presence means a run is (or was) there.
RUN_MARKERS = ("last.pt", "best.pt", "metrics.json")
# What --overwrite removes: this project's files only, never anything else in the folder.
RUN_FILES = ("*.pt", "metrics.json", "history.csv", "curves.png", "config.json", "test.*.txt", "eval*.json")
LOCK_NAME = ".lock"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_failure(path: Path, err: OSError) -> UserError:
    """One sentence for a write that failed: what, why, and what to do."""
    why = err.strerror or type(err).__name__
    if err.errno == errno.ENOSPC:
        fix = "free some disk space and run the command again (a training run continues with --resume)"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "choose a folder you can write to (for a training run: --out_dir or --run_name)"
    elif isinstance(err, (NotADirectoryError, FileExistsError)):
        fix = "a file stands where a folder should be; choose another path"
    else:
        fix = "check the path and run the command again"
    return UserError(f"could not write {path}: {why}; {fix}.")


@contextlib.contextmanager
def atomic_write(path: str | Path, binary: bool = False) -> Iterator[IO]:
    """`with atomic_write(p) as fh: ...`: the new file replaces `p` only when the block finishes."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise write_failure(path, err) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; use the permissions of any other file
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as fh:
            yield fh
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise write_failure(path, err) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path) as fh:
        fh.write(text)


def _lock_owner(lock: Path) -> dict | None:
    """The live process holding `lock`, or None when the lock is stale (its process has ended)."""
    try:
        owner = json.loads(lock.read_text(encoding="utf-8"))
        pid, host = int(owner["pid"]), owner.get("host")
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable or half-written: left by a process killed while taking it
    if host != socket.gethostname():
        return owner  # another machine sharing the folder: we cannot tell, so we assume it is alive
    if pid == os.getpid():
        return None  # ours (a notebook or a test training twice in one process)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return owner  # alive, another user's
    return owner


def _describe(run_dir: Path) -> str:
    """What an existing run got to, for the refusal message."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        if metrics.get("interrupted"):  # Ctrl-C saved and scored it: --resume takes it to the end
            return f"a run stopped by Ctrl-C at step {metrics.get('steps', '?')}"
        return f"a finished run ({metrics.get('steps', '?')} steps)"
    except (OSError, ValueError):
        return "a run (its checkpoints)"


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool, name_flag: str = "--run_name") -> Path:
    """What claim_run_dir refuses, checked before a command spends minutes on data and model: a folder
    that cannot be written, a live run in it, or a run in it and neither --resume nor --overwrite.
    Creates the folder; locks nothing. Returns run_dir."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} is a file, not a folder; give --out_dir a folder path (or pick a --run_name).")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_failure(run_dir, err) from None
    if not os.access(run_dir, os.W_OK):
        raise write_failure(run_dir, PermissionError(errno.EACCES, "Permission denied"))
    owner = _lock_owner(run_dir / LOCK_NAME) if (run_dir / LOCK_NAME).exists() else None
    if owner is not None:
        raise UserError(f"another training run (process {owner['pid']}) is writing to {run_dir} right now; "
                        f"wait for it to finish, or give this one another {name_flag}.")
    if any((run_dir / name).exists() for name in RUN_MARKERS) and not (resume or overwrite):
        _refuse(run_dir, name_flag)
    return run_dir


def _refuse(run_dir: Path, name_flag: str):
    new = "NEW_FOLDER" if name_flag == "--out_dir" else "NEW_NAME"
    raise UserError(f"{run_dir} already holds {_describe(run_dir)}; continue it with --resume, keep it and "
                    f"start another with {name_flag} {new}, or replace it with --overwrite.")


def claim_run_dir(run_dir: Path, resume: bool, overwrite: bool, name_flag: str = "--run_name") -> Path:
    """Check that a training run may write `run_dir`, lock it, and clean up after killed saves.

    Returns the lock file; `release_run_dir` removes it. Raises a UserError (one sentence) when the
    folder cannot be written, another live run holds it, or it holds a run and neither --resume nor
    --overwrite was given.
    """
    check_run_dir(run_dir, resume, overwrite, name_flag)
    lock = run_dir / LOCK_NAME
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_umask())
            break
        except FileExistsError:
            owner = _lock_owner(lock)
            if owner is not None:
                raise UserError(f"another training run (process {owner['pid']}) is writing to {run_dir} right now; "
                                f"wait for it to finish, or give this one another {name_flag}.") from None
            lock.unlink(missing_ok=True)  # stale: its process has ended
        except OSError as err:
            raise write_failure(run_dir, err) from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"pid": os.getpid(), "host": socket.gethostname()}, fh)
    try:
        for stale in run_dir.glob(".*.tmp"):  # a save killed half-way; the file it was replacing is intact
            stale.unlink(missing_ok=True)
        present = [name for name in RUN_MARKERS if (run_dir / name).exists()]
        if present and overwrite:
            for pattern in RUN_FILES:
                for path in run_dir.glob(pattern):
                    path.unlink()
            print(f"--overwrite: replacing the earlier run in {run_dir}")
        elif present and not resume:
            _refuse(run_dir, name_flag)
    except BaseException:
        release_run_dir(run_dir)
        raise
    return lock


def release_run_dir(run_dir: Path) -> None:
    lock = run_dir / LOCK_NAME
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(lock.read_text(encoding="utf-8"))["pid"] == os.getpid():
            lock.unlink()
