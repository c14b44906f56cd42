"""Test helpers for the services a test talks to: the session's PostgreSQL, and external ones.

A test that needs an external service (PostgreSQL at 127.0.0.1:5432, Redis, ...) calls
:func:`require`: unreachable on a laptop, the test is skipped with a message naming the service;
under CI (``FLYWHEEL_REQUIRE_SERVICES=1``, set by ``.ci/run``) the same situation fails.
"""

from __future__ import annotations

import os
import socket

import pytest


def require(name: str, host: str, port: int) -> None:
    """Skip (laptop) or fail (CI) unless ``name`` accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=3):
            return
    except OSError as exc:
        message = f"{name} is not reachable at {host}:{port} ({exc})"
    if os.environ.get("FLYWHEEL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}; FLYWHEEL_REQUIRE_SERVICES=1 requires it")
    pytest.skip(f"{message}: start it to run this test")


def fresh_database(name: str, driver: str = "postgresql") -> str:
    """An empty database ``name`` on the session's PostgreSQL (dropped first if it exists); returns
    its SQLAlchemy URL with ``driver`` (``postgresql`` for MLflow, ``postgresql+psycopg2`` for Airflow)."""
    from flywheel import config, database

    settings = config.load()
    database.drop_databases(settings, [name])
    database.ensure_databases(settings, [name])
    return config.with_database(settings.database_url, name, driver)


def require_program(name: str, path: str) -> str:
    """Skip (laptop) or fail (CI) unless the program ``name`` is at ``path``; returns the path."""
    if os.access(path, os.X_OK):
        return path
    message = f"{name} is not installed at {path}"
    if os.environ.get("FLYWHEEL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}; FLYWHEEL_REQUIRE_SERVICES=1 requires it (.ci/run installs Debian's chromium)")
    pytest.skip(f"{message}: install it (Debian: apt-get install chromium) to run the browser tests")


def listening_addresses(settings) -> set[tuple[str, int]]:
    """(ip, port) of every TCP listener of the stack's processes and their children."""
    import psutil

    from flywheel import stack

    out = set()
    for pid in filter(None, stack.status(settings).values()):
        if pid < 0:
            continue
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            try:
                conns = proc.net_connections(kind="inet")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            out |= {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}
    return out


def feature_rows_digest(settings, day) -> str:
    """A digest of a features partition's rows in a canonical order (Spark's file names and row order
    may differ from run to run; the rows may not)."""
    import hashlib

    import pandas as pd

    from flywheel import features, lake

    frame = lake.read_frame("features", features.DATASET, day, settings.lake)
    frame = frame[sorted(frame.columns)].sort_values(sorted(frame.columns)).reset_index(drop=True)
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes()).hexdigest()
