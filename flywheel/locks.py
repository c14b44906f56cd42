"""Non-blocking, re-entrant file locks that say who holds them (the lake's one-writer-per-partition rule)."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_locks: dict[str, tuple[IO[str], int, int]] = {}  # lock path -> (open file, depth, owning thread)
_locks_guard = threading.Lock()


@contextmanager
def flock(path: Path, what: str, busy: type[Exception] = BlockingIOError, reentrant: bool = True) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the block; never waits: if another process or
    thread holds it, raise ``busy`` naming the holder (pid, host, since when; written into the
    file by the holder). Re-entrant in the holding thread unless ``reentrant`` is False. Released
    by the kernel when the holder dies, so a killed process never leaves it held."""
    key = str(path)
    me = threading.get_ident()
    with _locks_guard:
        held = _locks.get(key)
        if held is not None and not reentrant:
            raise busy(f"{what} is held by this process")
        if held is not None and held[2] == me:
            _locks[key] = (held[0], held[1] + 1, me)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _locks_guard:
                handle, depth, owner = _locks[key]
                _locks[key] = (handle, depth - 1, owner)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise busy(
            f"{what} is being written by {holder}; this writer stopped and changed nothing. "
            "The other writer's version will stand: rerun this one after it has finished if it should win."
        ) from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC")
    handle.flush()
    with _locks_guard:
        _locks[key] = (handle, 1, me)
    try:
        yield
    finally:
        with _locks_guard:
            _, depth, _ = _locks.pop(key)
        handle.truncate(0)
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()
