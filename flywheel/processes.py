"""The stack's background processes: start one with a pid file and a log under ``FLYWHEEL_HOME``,
tell whether it still runs, wait until it answers, stop it (its whole process group).

Shared by :mod:`flywheel.stack` (the laptop profile) and :mod:`flywheel.cluster` (the cluster
profile's Spark master and worker and Celery workers). No Airflow, no Spark imports here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from flywheel import config


class StackError(RuntimeError):
    """A local component failed to start or to answer."""


def run_dir(settings: config.Settings) -> Path:
    path = settings.home / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_dir(settings: config.Settings) -> Path:
    path = settings.home / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_of(settings: config.Settings, name: str) -> Path:
    return log_dir(settings) / f"{name}.log"


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child its parent has not reaped yet)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    status = Path(f"/proc/{pid}/status")
    if status.is_file() and "\nState:\tZ" in status.read_text():
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def pid_of(settings: config.Settings, name: str) -> int | None:
    """The pid of the running component ``name``, or None (a stale pid file is removed)."""
    pidfile = run_dir(settings) / f"{name}.pid"
    if not pidfile.is_file():
        return None
    try:
        pid = int(pidfile.read_text().strip())
    except ValueError:
        pid = -1
    if pid <= 0 or not alive(pid):
        pidfile.unlink(missing_ok=True)
        return None
    return pid


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def spawn(settings: config.Settings, name: str, argv: list[str], env: dict[str, str], port: int | None = None) -> int:
    """Start ``argv`` as component ``name`` (its own session, output to its log) unless it runs already."""
    existing = pid_of(settings, name)
    if existing:
        return existing
    if port is not None and port_in_use(port, settings.client_host):
        # Without this check the new stack would silently talk to whatever answers there (e.g. the
        # stack of another checkout or FLYWHEEL_HOME) while its own server fails to bind.
        raise StackError(
            f"port {port} (for {name}) is already in use by a process this stack ({settings.home}) did not start: "
            "stop it (`make down` in the checkout that started it, with its FLYWHEEL_HOME) "
            "or choose other ports (the FLYWHEEL_*_PORT settings in the README)"
        )
    with log_of(settings, name).open("ab") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (run_dir(settings) / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def wait_http(url: str, timeout: float, name: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status < 500:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise StackError(f"{name} did not answer on {url} within {timeout:.0f}s; see {log}")


def wait_port(port: int, timeout: float, name: str, log: Path, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_in_use(port, host):
            return
        time.sleep(0.5)
    raise StackError(f"{name} did not listen on port {port} within {timeout:.0f}s; see {log}")


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop(settings: config.Settings, name: str, sig: int = signal.SIGTERM, grace: float = 30.0) -> bool:
    """Send ``sig`` to the component's process group and to every process it started (Airflow's task
    supervisor puts each task process in a group of its own), SIGKILL what is left after ``grace``
    seconds; True if it ran."""
    pid = pid_of(settings, name)
    if pid is None:
        return False
    family = _descendants(pid)  # before the signal: orphans are re-parented and lost from the tree
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    for child in family:
        try:
            os.kill(child, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while (alive(pid) or any(alive(c) for c in family)) and time.monotonic() < deadline:
        time.sleep(0.5)
    try:  # what is left of the group (the leader may exit before its children)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for child in family:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    (run_dir(settings) / f"{name}.pid").unlink(missing_ok=True)
    return True
