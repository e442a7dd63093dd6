"""One segkit command at a time in a run folder: a lock file holding the owner's PID, host and start.

The file is created with ``O_CREAT | O_EXCL``, so of two processes only one gets it, and removed on
every exit path of the command that took it. A lock whose process is gone (same host, PID dead or
reused by a process started later) is stale: it is taken over with a note. A lock of another host
cannot be checked and is honoured; its message says which file to delete once that run is over.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from segkit.errors import RunStateError

LOCK = ".segkit.lock"
#: an unreadable lock this young is being written by its owner, not left by a dead one
HALF_WRITTEN_S = 10.0


@contextmanager
def run_folder_lock(folder: Path, command: str, note: Callable[[str], None], required: bool = True) -> Iterator[None]:
    """Hold ``folder``'s lock for the block; a RunStateError naming the owner when a live process has it.

    Not ``required`` (a command that mostly reads a run): a folder that does not exist or cannot
    be written to is not locked; the command then reports what it finds there itself.
    """
    if not required and not folder.is_dir():
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    owner = _owner(command)
    try:
        _acquire(folder / LOCK, owner, note)
        held = True
    except OSError:  # the folder is read-only: nothing this command writes can go there either
        if required:
            raise
        held = False
    try:
        yield
    finally:
        if held:
            _release(folder / LOCK, owner)


def _owner(command: str) -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "process_start": _process_start(os.getpid()),
            "token": secrets.token_hex(8)}


def _acquire(path: Path, owner: dict[str, Any], note: Callable[[str], None]) -> None:
    for _ in range(3):  # a stale lock removed, then retried; another process may win the retry
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = read_lock(path)
            if (held is not None and not is_stale(held)) or (held is None and _age(path) < HALF_WRITTEN_S):
                raise RunStateError(_refusal(path, held)) from None
            if _remove_if_unchanged(path, held):
                note(f"{path.parent}: took over the lock of a segkit process that is gone ({_describe(held)})")
            continue
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(owner, handle)
        return
    raise RunStateError(f"{path.parent}: another segkit process is taking this folder; try again")


def _release(path: Path, owner: dict[str, Any]) -> None:
    held = read_lock(path)
    if held is not None and held.get("token") == owner["token"]:
        path.unlink(missing_ok=True)


def read_lock(path: Path) -> dict[str, Any] | None:
    """The lock's owner, or None when it vanished or cannot be read (half written: its owner died)."""
    try:
        held = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return held if isinstance(held, dict) else None


def is_stale(held: dict[str, Any]) -> bool:
    """Whether the lock's process is gone: only decidable on its own host."""
    pid = held.get("pid")
    if held.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    recorded, now = held.get("process_start"), _process_start(pid)
    return recorded is not None and now is not None and recorded != now  # the PID was reused


def _remove_if_unchanged(path: Path, held: dict[str, Any] | None) -> bool:
    """Remove a stale (or unreadable) lock, unless another process replaced it meanwhile."""
    aside = path.with_name(f"{LOCK}.{os.getpid()}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    if read_lock(aside) == held:
        aside.unlink()
        return held is not None
    try:  # a live owner's lock renamed by mistake: put it back unless a third process took the name
        os.link(aside, path)
    except FileExistsError:
        pass
    aside.unlink()
    return False


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, Linux), to tell a reused PID from its first owner."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _describe(held: dict[str, Any] | None) -> str:
    if held is None:
        return "an unreadable lock file"
    return f"PID {held.get('pid')} on host {held.get('host')}, segkit {held.get('command')} since {held.get('started')}"


def _refusal(path: Path, held: dict[str, Any] | None) -> str:
    return (f"{path.parent}: in use by another segkit process ({_describe(held)}); wait for it to finish or set "
            f"project.output_dir to another folder (if that process is gone, delete {path})")
