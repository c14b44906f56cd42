"""Failpoints: named places in the code where a fault-injection test stops a process.

``FLYWHEEL_FAILPOINTS`` (read in :mod:`flywheel.config`) is a comma-separated list of
``name=action`` entries; unset, every failpoint is a no-op costing one environment read. Actions:

- ``hang``: write ``<FLYWHEEL_HOME>/failpoints/<name>.<pid>`` (the test waits for that file) and
  sleep until killed: the test sends the real signal (SIGKILL) at exactly that point.
- ``raise``: raise :class:`FailpointError` (an ordinary crash of the step, for retry tests).
- ``exit``: ``os._exit(137)`` at once, as a SIGKILL would leave it (no ``finally``, no atexit).

A failpoint marks a moment whose interruption must leave the lake, the registry and the
history consistent; ``tests/faults/`` kills a process at each one and checks what is left.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from flywheel import config

ACTIONS = ("hang", "raise", "exit")


class FailpointError(RuntimeError):
    """Raised at a failpoint whose action is ``raise``."""


def marker(home: Path, name: str, pid: int) -> Path:
    return home / "failpoints" / f"{name}.{pid}"


def failpoint(name: str) -> None:
    """Act as ``FLYWHEEL_FAILPOINTS`` says for ``name`` (nothing when it does not name it)."""
    action = config.failpoints().get(name)
    if action is None:
        return
    if action == "raise":
        raise FailpointError(f"failpoint {name} (FLYWHEEL_FAILPOINTS)")
    if action == "exit":
        os._exit(137)
    path = marker(config.load().home, name, os.getpid())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))
    while True:  # hang: the test kills this process now
        time.sleep(3600)
