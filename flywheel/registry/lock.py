"""One lock around every change of the registry's aliases and the promotion history.

Promotion reads the champion, decides, moves the alias and appends to the history; two of
those interleaved could leave the wrong champion or a decision made against a stale one.

The lock lives where the state it guards lives, MLflow's backend store
(``Settings.mlflow_backend_uri``), so every worker that shares that store excludes the others,
whatever else it shares:

- a PostgreSQL store (the laptop and the cluster profiles): a session-level advisory lock
  (``pg_try_advisory_lock``, polled until the timeout) on a dedicated connection to that database.
  The server drops it when the holder's session ends, so a holder killed with SIGKILL leaves no
  stale lock behind. Workers need a connection to that database (on the cluster profile the tasks
  otherwise reach MLflow over HTTP only);
- a local store (SQLite file, file store): an ``fcntl`` lock on a file beside it
  (``<store>.registry.lock``), released by the kernel when the holder exits;
- any other store: an ``fcntl`` lock under ``FLYWHEEL_HOME/locks`` (one host only).

The lock is re-entrant within a thread, so a function holding it may call another that takes it;
threads of one process exclude each other (each acquisition has its own connection or file description).
"""

from __future__ import annotations

import fcntl
import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from flywheel.config import Settings

DEFAULT_TIMEOUT_S = 300.0
POLL_S = 0.05
# One advisory lock key for the registry (advisory locks are scoped to the database they are taken in).
ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"flywheel.registry").digest()[:8], "big", signed=True)
_POSTGRES = ("postgresql", "postgres", "postgresql+psycopg2")
_held = threading.local()


class RegistryLockTimeout(TimeoutError):
    """Another promotion or rollback held the registry lock for too long."""


def uses_advisory_lock(settings: Settings) -> bool:
    """True when MLflow's backend store is PostgreSQL (the lock is then an advisory lock in it)."""
    return urlparse(settings.mlflow_backend_uri).scheme in _POSTGRES


def lock_path(settings: Settings) -> Path:
    """The lock file for a store that is not PostgreSQL: beside the SQLite file or in the file store."""
    uri = settings.mlflow_backend_uri
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite" and uri.startswith("sqlite:///") and ":memory:" not in uri:
        db = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
        return db.with_name(db.name + ".registry.lock")
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else uri) / "registry.lock"
    return settings.home / "locks" / "registry.lock"


def describe(settings: Settings) -> str:
    """Which lock guards the registry, for messages (no password)."""
    if uses_advisory_lock(settings):
        from sqlalchemy.engine import make_url

        where = make_url(settings.mlflow_backend_uri).render_as_string(hide_password=True)
        return f"the PostgreSQL advisory lock {ADVISORY_KEY} in MLflow's database {where}"
    return f"the file lock {lock_path(settings)}"


def _timeout(settings: Settings, timeout_s: float) -> RegistryLockTimeout:
    return RegistryLockTimeout(
        f"waited {timeout_s:.0f}s for the registry lock ({describe(settings)}): another promotion or rollback "
        "holds it. Retry the task; a crashed holder releases it when its process (or its database session) ends."
    )


@contextmanager
def _advisory(settings: Settings, timeout_s: float) -> Iterator[None]:
    from flywheel import database

    conn = database.connect(settings, url=settings.mlflow_backend_uri)
    try:
        conn.autocommit = True  # a session lock: no transaction held open while the block runs
        with conn.cursor() as cur:
            deadline = time.monotonic() + timeout_s
            while True:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_KEY,))
                if cur.fetchone()[0]:
                    break
                if time.monotonic() >= deadline:
                    raise _timeout(settings, timeout_s)
                time.sleep(POLL_S)
        try:
            yield
        finally:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_KEY,))
    finally:
        conn.close()  # ends the session: the server releases the lock even if the unlock failed


@contextmanager
def _file(settings: Settings, timeout_s: float) -> Iterator[None]:
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _timeout(settings, timeout_s) from None
                time.sleep(POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def registry_lock(settings: Settings, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[str]:
    """Hold the registry lock for the block (wait up to ``timeout_s`` seconds); yields its description."""
    advisory = uses_advisory_lock(settings)
    key = f"pg:{settings.mlflow_backend_uri}" if advisory else f"file:{lock_path(settings)}"
    depth: dict[str, int] = getattr(_held, "depth", None) or {}
    _held.depth = depth
    if depth.get(key):
        depth[key] += 1
        try:
            yield describe(settings)
        finally:
            depth[key] -= 1
        return
    with (_advisory if advisory else _file)(settings, timeout_s):
        depth[key] = 1
        try:
            yield describe(settings)
        finally:
            depth[key] = 0
