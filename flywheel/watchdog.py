"""The stack's watchdog: ``python -m flywheel.stack watch``, started by ``up``.

Airflow's scheduler, dag-processor and triggerer exit on a lost database connection by design,
expecting a process manager (Kubernetes, systemd) to start them again. The watchdog is that manager
for the local stack: once the database answers again it starts what exited for that reason (with
``stack.up``), counts it in ``run/watchdog.json`` and says so in its log. Any other exit stays a
failure that :func:`flywheel.stack.check_running` names.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flywheel import config, database, processes
from flywheel.processes import StackError, lost_database, pid_of, run_dir

WATCHDOG = "watchdog"
# The watchdog's crash-loop guard: past this many restarts of one component within the window, it
# leaves the component stopped.
MAX_RESTARTS, RESTART_WINDOW_S = 5, 600.0


def _watchdog_file(settings: config.Settings) -> Path:
    return run_dir(settings) / f"{WATCHDOG}.json"


def watchdog_record(settings: config.Settings, reset: bool = False) -> dict[str, Any]:
    """What the watchdog did since the stack started: ``{"restarts": {component: count}, "gave_up":
    [component, ...]}`` (``reset``: forget it, when the stack stops)."""
    if reset:
        _watchdog_file(settings).unlink(missing_ok=True)
    try:
        return json.loads(_watchdog_file(settings).read_text())
    except (FileNotFoundError, ValueError):
        return {"restarts": {}, "gave_up": []}


def supervise(
    settings: config.Settings,
    names: list[str],
    restart: Callable[[], Any],
    database_error: Callable[[], str | None],
    interval: float = 2.0,
) -> None:
    """The watchdog's loop (runs until stopped): when components of ``names`` have exited because they
    lost their database (:func:`lost_database`), wait until ``database_error()`` says it answers, then
    call ``restart()`` (which starts whatever is not running). Each restart is counted in
    ``run/watchdog.json`` and said on stdout (the watchdog's log). A component that exits for any other
    reason, or loses its database MAX_RESTARTS times within RESTART_WINDOW_S, stays stopped."""

    def say(message: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", flush=True)

    def record() -> None:
        tmp = _watchdog_file(settings).with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(_watchdog_file(settings))

    state = watchdog_record(settings)
    recent: dict[str, list[float]] = {}

    def lost_only() -> dict[str, str] | None:
        """The dead components and why, if every one of them lost its database and may be restarted
        (``restart`` starts whatever is not running: a component that died otherwise stops it)."""
        dead = [name for name in names if pid_of(settings, name) is None]
        lost = {name: why for name in dead if name not in state["gave_up"] and (why := lost_database(settings, name))}
        return lost if lost and len(lost) == len(dead) else None

    say(f"watching {', '.join(names)}")
    while True:
        time.sleep(interval)
        lost = lost_only()
        if not lost:
            continue
        now = time.monotonic()
        for name in lost:
            recent[name] = [t for t in recent.get(name, []) if now - t < RESTART_WINDOW_S]
        tired = [name for name in lost if len(recent[name]) >= MAX_RESTARTS]
        if tired:
            say(f"{', '.join(tired)} lost the database {MAX_RESTARTS} times in {RESTART_WINDOW_S:.0f} s: leaving it stopped")
            state["gave_up"] += tired
            record()
            continue
        say(f"{', '.join(lost)} exited on a lost database ({next(iter(lost.values()))}); restarting once it answers")
        waited = time.monotonic()
        while (error := database_error()) is not None:
            if time.monotonic() - waited > 60:
                say(f"still waiting for the database: {error}")
                waited = time.monotonic()
            time.sleep(interval)
        lost = lost_only()  # again: others may have exited meanwhile (a scheduler waits for its running tasks)
        if not lost:
            continue
        try:
            restart()
        except StackError as exc:
            say(f"restarting {', '.join(lost)} failed: {exc}")
            continue
        for name in lost:
            recent.setdefault(name, []).append(time.monotonic())
            state["restarts"][name] = state["restarts"].get(name, 0) + 1
        record()
        say(f"restarted {', '.join(lost)}")


def start(settings: config.Settings, spark_connect: bool = True, mlflow_ui: bool = True) -> int:
    """Start the stack's watchdog (:func:`watch`) unless it runs; it inherits this process's environment,
    the settings the stack was started with."""
    argv = [sys.executable, "-m", "flywheel.stack", "watch"]
    argv += [] if spark_connect else ["--no-spark-connect"]
    argv += [] if mlflow_ui else ["--no-mlflow-ui"]
    env = config.child_env(FLYWHEEL_HOME=str(settings.home))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(config.REPO_ROOT), env.get("PYTHONPATH")]))
    return processes.spawn(settings, WATCHDOG, argv, env)


def restarts(settings: config.Settings) -> dict[str, Any]:
    """What the watchdog did: ``{"restarts": {component: count}, "gave_up": [component, ...]}``."""
    return watchdog_record(settings)


def database_error(settings: config.Settings) -> str | None:
    """None if Airflow's metadata database answers, else why not."""
    from sqlalchemy.engine import make_url

    url = settings.airflow_sql_alchemy_conn
    try:
        database.connect(settings, make_url(url).database, url).close()
    except database.DatabaseError as exc:
        return str(exc)
    return None


def watch(settings: config.Settings, spark_connect: bool = True, mlflow_ui: bool = True) -> None:
    """The watchdog (runs until stopped): :func:`supervise` over the components ``up`` started with
    these switches (the database aside), restarting with ``up`` once Airflow's database answers."""
    from flywheel import stack  # stack starts the watchdog: imported when the watchdog runs

    names = [n for n in stack.expected_components(settings, spark_connect, mlflow_ui) if n != "postgres"]
    supervise(
        settings, names, lambda: stack.up(settings, spark_connect=spark_connect, mlflow_ui=mlflow_ui),
        lambda: database_error(settings),
    )  # fmt: skip

