"""One lock around every change of the registry's aliases and the promotion history.

Promotion reads the champion, decides, moves the alias and appends to the history; two of
those interleaved could leave the wrong champion or a decision made against a stale one.
The lock is an ``fcntl`` file lock on ``<FLYWHEEL_HOME>/locks/registry.lock``: enough for
one host (the laptop stack, or Airflow workers sharing one volume that supports POSIX locks).
A multi-host deployment whose workers share no such volume should take a database advisory
lock instead (e.g. PostgreSQL ``pg_advisory_xact_lock`` on the MLflow backend store) around
the same block: only :func:`registry_lock` needs to change.

The lock is re-entrant within a thread, so a function holding it may call another that takes it.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flywheel.config import Settings

DEFAULT_TIMEOUT_S = 300.0
_held = threading.local()


class RegistryLockTimeout(TimeoutError):
    """Another promotion or rollback held the registry lock for too long."""


def lock_path(settings: Settings) -> Path:
    return settings.home / "locks" / "registry.lock"


@contextmanager
def registry_lock(settings: Settings, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[Path]:
    """Hold the registry lock for the block (wait up to ``timeout_s`` seconds for it)."""
    path = lock_path(settings)
    depth: dict[str, int] = getattr(_held, "depth", None) or {}
    _held.depth = depth
    key = str(path)
    if depth.get(key):
        depth[key] += 1
        try:
            yield path
        finally:
            depth[key] -= 1
        return

    path.parent.mkdir(parents=True, exist_ok=True)
    # Each acquisition opens its own file description, so threads of one process exclude each other too.
    with path.open("a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RegistryLockTimeout(
                        f"waited {timeout_s:.0f}s for the registry lock {path}: another promotion or rollback "
                        "holds it. Retry the task; if no promotion is running, a crashed process may hold "
                        "the file open (the lock is released when that process exits)."
                    ) from None
                time.sleep(0.05)
        depth[key] = 1
        try:
            yield path
        finally:
            depth[key] = 0
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
