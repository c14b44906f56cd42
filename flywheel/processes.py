"""The stack's background processes: start one with a pid file and a log under ``FLYWHEEL_HOME``,
tell whether it still runs, wait until it answers, stop it (its whole process group), clean up
after one that died (the processes it left behind), and tell from its log whether it exited
because it lost its database.

Shared by :mod:`flywheel.stack` (the laptop profile) and :mod:`flywheel.cluster` (the cluster
profile's Spark master and worker and Celery workers). No Airflow, no Spark imports here.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
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


@contextlib.contextmanager
def _pidfile_lock(settings: config.Settings, name: str) -> Iterator[None]:
    """Exclusive, per component: a look that removes a stale pid file and a start that writes a new
    one never interleave (without it, the watchdog's look could unlink the pid file `make up` had just
    written for a new scheduler, leaving that scheduler running unregistered beside the next one)."""
    import fcntl

    with (run_dir(settings) / f".{name}.pid.lock").open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def _read_pidfile(pidfile: Path) -> tuple[int, os.stat_result] | None:
    try:
        with pidfile.open() as fh:
            raw, seen = fh.read().strip(), os.fstat(fh.fileno())
    except FileNotFoundError:
        return None
    try:
        return int(raw), seen
    except ValueError:
        return -1, seen


def pid_of(settings: config.Settings, name: str, _locked: bool = False) -> int | None:
    """The pid of the running component ``name``, or None. A stale pid file (the component died) is
    removed, and what the dead component left running is killed (:func:`kill_leftovers`), under the
    component's pid-file lock (``_locked``: the caller holds it)."""
    pidfile = run_dir(settings) / f"{name}.pid"
    read = _read_pidfile(pidfile)
    if read is None:
        return None
    if read[0] > 0 and alive(read[0]):
        return read[0]
    with contextlib.nullcontext() if _locked else _pidfile_lock(settings, name):
        again = _read_pidfile(pidfile)  # a start may have replaced it since the first read
        if again is None:
            return None
        pid, seen = again
        if pid > 0 and alive(pid):
            return pid
        if pid > 0:
            killed = kill_leftovers(pid, seen.st_mtime)
            audit(settings, f"{name} (pid {pid}) is gone" + (f"; killed what it left running: {killed}" if killed else ""))
        pidfile.unlink(missing_ok=True)
    return None


def kill_leftovers(leader: int, started: float) -> list[int]:
    """SIGKILL what a dead component left running: the members of its process group (``spawn`` made
    it a group leader) and everything they started. A SIGKILLed scheduler leaves its LocalExecutor
    workers behind, each blocked forever on a queue nobody writes to any more, and a worker still
    running a task would run it on while the next scheduler resets and reruns that task: the same
    day built twice at once. Only processes started since the pid file was written (``started``,
    its mtime) in this boot are touched: a pgid cannot be reused while a member of the group lives,
    and the start time rules out an unrelated group from before a reboot. Returns the pids killed."""
    import psutil

    if started < psutil.boot_time():
        return []
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == leader and proc.create_time() >= started - 1 and proc.pid != leader:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    doomed = {p.pid: p for p in members}
    for proc in members:
        try:
            doomed.update((c.pid, c) for c in proc.children(recursive=True))
        except psutil.Error:
            continue
    for proc in doomed.values():
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(list(doomed.values()), timeout=10)
    return sorted(doomed)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def spawn(settings: config.Settings, name: str, argv: list[str], env: dict[str, str], port: int | None = None) -> int:
    """Start ``argv`` as component ``name`` (its own session, output to its log) unless it runs already."""
    with _pidfile_lock(settings, name):
        return _spawn_locked(settings, name, argv, env, port)


def _spawn_locked(settings: config.Settings, name: str, argv: list[str], env: dict[str, str], port: int | None) -> int:
    existing = pid_of(settings, name, _locked=True)
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
    log_path = log_of(settings, name)
    # Where this start's output begins in the (appended) log: lost_database reads only what it wrote.
    _offset_file(settings, name).write_text(str(log_path.stat().st_size if log_path.exists() else 0))
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    pidfile = run_dir(settings) / f"{name}.pid"
    tmp = pidfile.with_name(f".{pidfile.name}.{os.getpid()}")
    tmp.write_text(str(proc.pid))
    tmp.replace(pidfile)
    audit(settings, f"started {name}: pid {proc.pid}")
    return proc.pid


def audit(settings: config.Settings, message: str) -> None:
    """One line in ``logs/processes.log``: what this stack started, stopped and killed, by whom (the
    pid and command of the process that did it), for the post-mortem of a component that vanished."""
    import sys

    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{os.getpid()} {' '.join(sys.argv[:3])[:80]}] {message}\n"
    with (log_dir(settings) / "processes.log").open("a") as fh:
        fh.write(line)


def audit_lines(settings: config.Settings, names: list[str], last: int = 6) -> str:
    """The last ``last`` lines of the audit log that name one of ``names``."""
    try:
        lines = (log_dir(settings) / "processes.log").read_text().splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join([line for line in lines if any(f"] {n} " in line or f" {n}:" in line or f"stopping {n} " in line for n in names)][-last:])


def _offset_file(settings: config.Settings, name: str) -> Path:
    return run_dir(settings) / f"{name}.log-offset"


# The last exception of a process that died because its database went away (Airflow's scheduler,
# dag-processor and triggerer exit on it by design and expect a process manager to start them again).
_LOST_DATABASE = re.compile(
    r"^(?:sqlalchemy\.exc\.(?:OperationalError|InterfaceError)|psycopg2\.(?:OperationalError|InterfaceError)"
    r"|asyncpg\.exceptions\.\w*(?:Connection|CannotConnectNow)\w*)\b.*$",
    re.MULTILINE,
)


def lost_database(settings: config.Settings, name: str, tail_lines: int = 30) -> str | None:
    """The error line if the last start of component ``name`` ended on a lost database connection:
    an unindented ``OperationalError`` (the traceback of an uncaught exception, not a task's log
    line, which the scheduler's log prefixes) among the last lines it wrote. None otherwise."""
    log = log_of(settings, name)
    try:
        offset = int(_offset_file(settings, name).read_text().strip())
        size = log.stat().st_size
    except (FileNotFoundError, ValueError):
        return None
    with log.open("rb") as fh:
        fh.seek(max(offset, size - 64 * 1024))
        text = fh.read().decode(errors="replace")
    tail = "\n".join(text.splitlines()[-tail_lines:])
    match = _LOST_DATABASE.search(tail)
    return match.group(0)[:300] if match else None


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
    audit(settings, f"stopping {name} (pid {pid}, signal {sig}) and its descendants {family}")
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
    with _pidfile_lock(settings, name):  # only this pid's file: a start meanwhile keeps its own
        read = _read_pidfile(run_dir(settings) / f"{name}.pid")
        if read is not None and read[0] == pid:
            (run_dir(settings) / f"{name}.pid").unlink()
    return True
