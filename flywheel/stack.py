"""The local stack: PostgreSQL, the MLflow UI, a Spark Connect server and Airflow (api-server,
scheduler, dag-processor), every listener on loopback and the Airflow UI/API behind a login.

``python -m flywheel.stack up|down|status|env|login`` starts, stops or shows the processes that
``make up``, ``make down`` and ``make demo`` use. Everything they write (database, logs, pid files,
the generated login) lives under ``FLYWHEEL_HOME``. This module imports no Airflow: it drives the
``airflow`` CLI, exactly as a user would; :mod:`flywheel.airflow_api` talks to the REST API.

A watchdog (``python -m flywheel.stack watch``, started by ``up``) starts again a component that
exited because it lost its database, once the database answers: Airflow's scheduler, dag-processor
and triggerer exit on a lost connection by design, expecting a process manager (Kubernetes, systemd)
to restart them. Any other exit stays a failure that :func:`check_running` names.
"""

from __future__ import annotations

import argparse
import sys
import time

from flywheel import cluster, config, database, launch, processes, watchdog
from flywheel.processes import StackError
from flywheel.watchdog import WATCHDOG

# The triggerer runs deferred tasks; without one the UI's health panel shows it red.
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# How long check_running waits for the watchdog to bring back a component that lost its database.
RESTART_WAIT_S = 180.0
# Each profile's components in start order; `down` stops them in reverse (the database last).
LAPTOP = ("postgres", "mlflow", "spark-connect", *(f"airflow-{c}" for c in AIRFLOW_COMPONENTS))


def components(settings: config.Settings) -> list[str]:
    """The components of the settings' profile, in start order."""
    if not settings.cluster:
        return list(LAPTOP)
    return ["postgres", "mlflow", *cluster.components(settings)[:2], "spark-connect",
            *LAPTOP[3:], *cluster.worker_names(settings)]  # fmt: skip


def _known(settings: config.Settings) -> list[str]:
    """Every component a stack of this FLYWHEEL_HOME may have started (either profile, any worker count)."""
    names = components(settings)
    for pidfile in sorted(processes.run_dir(settings).glob("*.pid")):
        if pidfile.stem not in names and "." not in pidfile.stem:
            names.insert(1, pidfile.stem)  # stopped before the database, like the rest
    return names
























def up(settings: config.Settings | None = None, spark_connect: bool = True, mlflow_ui: bool = True) -> float:
    """Start whatever is not running yet and wait until the Airflow API (and the MLflow UI and Spark
    Connect) answer; returns the seconds it took. The slow starts (a JVM, two migrations, three
    Python servers) overlap: everything is spawned first, then waited for. The cluster profile adds
    a Spark master and worker (Spark Connect submits to them) and Celery workers. One ``up`` at a
    time per FLYWHEEL_HOME (a file lock): the watchdog's and a user's never start a component twice."""
    import fcntl

    settings = settings or config.load()
    with (processes.run_dir(settings) / "up.lock").open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        return _up(settings, spark_connect, mlflow_ui)


def _up(settings: config.Settings, spark_connect: bool, mlflow_ui: bool) -> float:
    started = time.monotonic()
    if settings.cluster:
        cluster.check_broker(settings)
    launch.start_database(settings)
    launch.admin_password(settings)  # generated before the api-server first reads the file
    if mlflow_ui or settings.cluster:  # on the cluster profile tasks need the server
        launch.start_mlflow_ui(settings, wait=False)
    if spark_connect and not settings.spark_remote:
        if settings.cluster:
            cluster.start_spark(settings, wait=False)
        launch.start_spark_connect(settings, wait=False)
    try:
        launch.init_airflow(settings)
    except StackError as exc:
        raise StackError(f"{exc}\n(what already started keeps running: `make down` stops it)") from exc
    env = launch.airflow_env(settings, spark_connect=spark_connect)
    airflow_bin = str(launch.bin_dir() / "airflow")
    # The api-server first: the scheduler's preload (~15 s of CPU, airflow_local_settings.py) would
    # otherwise compete with it, and the UI is what a user waits for.
    processes.spawn(settings, "airflow-api-server", [airflow_bin, "api-server"], env, port=settings.airflow_port)
    processes.wait_http(
        f"{settings.airflow_url}/api/v2/monitor/health", 180, "Airflow API server",
        processes.log_of(settings, "airflow-api-server"),
    )  # fmt: skip
    processes.spawn(settings, "airflow-dag-processor", [airflow_bin, "dag-processor"], env)
    # --skip-serve-logs: the scheduler's log server binds every interface (no host setting in 3.3);
    # on one machine the api-server reads the task logs from disk anyway.
    processes.spawn(settings, "airflow-scheduler", [airflow_bin, "scheduler", "--skip-serve-logs"], env)
    # The triggerer's log server binds every interface too.
    processes.spawn(settings, "airflow-triggerer", [airflow_bin, "triggerer", "--skip-serve-logs"], env)
    if settings.cluster:
        cluster.start_workers(settings, env, airflow_bin)
    if mlflow_ui or settings.cluster:
        launch.start_mlflow_ui(settings)  # running already: only waits until it answers
    if spark_connect and not settings.spark_remote:
        if settings.cluster:
            cluster.wait_spark_worker(settings)
        launch.start_spark_connect(settings)
    if settings.cluster:
        cluster.wait_workers(settings)
    watchdog.start(settings, spark_connect, mlflow_ui)
    check_running(settings, expected_components(settings, spark_connect, mlflow_ui))
    return time.monotonic() - started


def restart_airflow(settings: config.Settings, spark_connect: bool = True, mlflow_ui: bool = True) -> float:
    """Stop the Airflow components (and Celery workers) and start them again with ``settings``: how
    a changed schedule (the replay clock) reaches the scheduler, the dag-processor and the tasks.
    The database, MLflow and Spark keep running; the watchdog is started again with the new settings."""
    processes.stop(settings, WATCHDOG)
    for name in reversed(components(settings)):
        if name.startswith("airflow-"):
            processes.stop(settings, name)
    return up(settings, spark_connect=spark_connect, mlflow_ui=mlflow_ui)










def expected_components(settings: config.Settings, spark_connect: bool = True, mlflow_ui: bool = True) -> list[str]:
    """The components `up` starts with these switches (the ones that must stay up)."""
    names = []
    for name in components(settings):
        if name == "postgres" and not settings.database_embedded:
            continue
        if name == "mlflow" and not (settings.mlflow_stack_server and (mlflow_ui or settings.cluster)):
            continue
        if name.startswith("spark-") and not (spark_connect and not settings.spark_remote):
            continue
        names.append(name)
    return names


def check_running(settings: config.Settings, expected: list[str]) -> None:
    """Raise StackError naming every expected component that has exited, with where its log is.

    A component that dies is a failure to look at, not to hide. One exception: a component that
    exited because it lost its database is what the watchdog restarts (once the database answers);
    while the watchdog runs and has not given up on it, this waits up to RESTART_WAIT_S for it.
    """
    deadline = time.monotonic() + RESTART_WAIT_S
    while True:
        state = status(settings)
        dead = [name for name in expected if not state.get(name)]
        lost = {name: why for name in dead if (why := processes.lost_database(settings, name))}
        restarting = bool(lost) and set(lost) == set(dead) and processes.pid_of(settings, WATCHDOG) is not None
        if not restarting or time.monotonic() > deadline or set(lost) & set(watchdog.restarts(settings)["gave_up"]):
            break
        time.sleep(2)
    if dead:
        logs = ", ".join(
            str(settings.postgres_log if name == "postgres" else processes.log_of(settings, name)) for name in dead
        )
        why = ""
        if lost:
            error = watchdog.database_error(settings)
            why = f" ({', '.join(lost)}: lost the database: {next(iter(lost.values()))}" + (
                f"; it is still unreachable: {error})" if error else "; the watchdog did not restart it)"
            )
        # What the stack's own processes did to them (logs/processes.log: starts, stops, kills, by whom).
        audit = processes.audit_lines(settings, dead, last=6)
        raise StackError(
            f"{', '.join(dead)} exited while the stack was in use{why}; see {logs}"
            + (f"\nlast starts/stops/kills of {', '.join(dead)} (logs/processes.log):\n{audit}" if audit else "")
        )


def running(settings: config.Settings) -> list[str]:
    return [name for name, pid in status(settings).items() if pid]


def down(settings: config.Settings | None = None) -> list[str]:
    """Stop every component this stack started (SIGTERM to its process group, then SIGKILL), the
    database last; whatever the profile, every component with a pid file under FLYWHEEL_HOME."""
    settings = settings or config.load()
    stopped = [WATCHDOG] if processes.stop(settings, WATCHDOG) else []  # first: it would restart the others
    watchdog.watchdog_record(settings, reset=True)  # the next `up` counts its restarts from zero
    for name in reversed(_known(settings)):
        if name == "postgres":
            try:
                if database.stop(settings):
                    stopped.append(name)
            except database.DatabaseError as exc:
                raise StackError(str(exc)) from exc
        elif processes.stop(settings, name):
            stopped.append(name)
    return stopped


def status(settings: config.Settings | None = None) -> dict[str, int | None]:
    """Each component and its pid (None: not running). An external database counts as running."""
    settings = settings or config.load()
    out: dict[str, int | None] = {}
    for name in _known(settings):
        if name == "postgres":
            pidfile = settings.postgres_data_dir / "postmaster.pid"
            if not settings.database_embedded:
                out[name] = -1
            elif pidfile.is_file() and database.is_running(settings):
                out[name] = int(pidfile.read_text().split()[0])
            else:
                out[name] = None
        else:
            out[name] = processes.pid_of(settings, name)
    return out


def login_banner(settings: config.Settings) -> str:
    """What `make up` / `make demo` print: where the UIs are and the login."""
    uri = settings.mlflow_tracking_uri
    mlflow = (
        f"MLflow:     {uri} (your tracking server)"
        if not settings.mlflow_stack_server
        else f"MLflow UI:  {settings.airflow_url}{config.MLFLOW_PATH}/  (through Airflow's login, read-only; "
        f"the server itself: {settings.mlflow_ui_url}/)"
    )
    return (
        f"Airflow UI: {settings.airflow_url}  login: {launch.ADMIN_USER} / {launch.admin_password(settings)}"
        f"  (kept in {settings.passwords_file})\n{mlflow}\n"
        "Flywheel:   Model health in the Airflow UI's navigation; an Evidence tab on every task instance"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.stack", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("up", "down", "status", "env", "login", "watch"))
    parser.add_argument("--no-spark-connect", action="store_true", help="watch: the stack runs without Spark Connect")
    parser.add_argument("--no-mlflow-ui", action="store_true", help="watch: the stack runs without the MLflow UI")
    args = parser.parse_args(argv)
    settings = config.load()
    try:
        if args.command == "watch":
            watchdog.watch(settings, spark_connect=not args.no_spark_connect, mlflow_ui=not args.no_mlflow_ui)
        elif args.command == "up":
            seconds = up(settings)
            print(f"stack up in {seconds:.0f}s (logs: {settings.home / 'logs'})")
            print(login_banner(settings))
        elif args.command == "down":
            stopped = down(settings)
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        elif args.command == "status":
            for name, pid in status(settings).items():
                state = "external" if pid == -1 else ("running, pid " + str(pid) if pid else "stopped")
                print(f"{name:24} {state}")
        elif args.command == "login":
            print(login_banner(settings))
        else:
            env = launch.airflow_env(settings)
            import shlex

            for key in sorted(k for k in env if k.startswith(("AIRFLOW", "FLYWHEEL", "SPARK", "PYTHONPATH", "MLFLOW"))):
                if "SECRET" not in key:
                    print(f"export {key}={shlex.quote(str(env[key]))}")
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
