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
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flywheel import cluster, config, database, processes
from flywheel.processes import StackError

# The triggerer runs deferred tasks; without one the UI's health panel shows it red.
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN_USER = "admin"
WATCHDOG = processes.WATCHDOG
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


def bin_dir() -> Path:
    """The folder of the running interpreter's scripts (the virtual environment's bin/)."""
    return Path(sys.executable).parent


def _secret_file(path: Path, make: Callable[[], str]) -> str:
    """Read a generated secret, creating it (readable by the owner only) the first time. The file
    appears complete or not at all (written aside, then linked into place), so a concurrent reader
    never sees it empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(make() + "\n")
            os.link(tmp, path)  # fails if another process created it first: theirs wins
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


def admin_password(settings: config.Settings) -> str:
    """The generated password of the ``admin`` user (created on first use, mode 0600)."""
    raw = _secret_file(settings.passwords_file, lambda: json.dumps({ADMIN_USER: secrets.token_urlsafe(12)}))
    try:
        return json.loads(raw)[ADMIN_USER]
    except (ValueError, KeyError) as exc:
        raise StackError(f"{settings.passwords_file} has no password for {ADMIN_USER!r}: delete the file to regenerate it") from exc


def airflow_env(settings: config.Settings | None = None, spark_connect: bool = True) -> dict[str, str]:
    """The environment every Airflow process of the local stack runs with (embedded defaults)."""
    settings = settings or config.load()
    home = settings.airflow_home
    env = config.child_env()
    env.update(
        {
            "FLYWHEEL_HOME": str(settings.home),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(config.REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(config.REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",  # the cluster profile: CeleryExecutor, below
            # Three task processes on two cores: a Spark task mostly waits for the Spark Connect server
            # and a sensor poke is short, so a third slot keeps the CPUs busy; more only thrashes.
            "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "3"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": settings.airflow_sql_alchemy_conn,
            # Tasks reach MLflow's store (PostgreSQL) directly, the same one the MLflow UI shows.
            "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
            "AIRFLOW__API__HOST": settings.bind_host,
            "AIRFLOW__API__PORT": str(settings.airflow_port),
            "AIRFLOW__API__BASE_URL": settings.airflow_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.airflow_url}/execution/",
            # Login on: Airflow's simple auth manager with one admin whose password we generated.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(settings.passwords_file),
            # One signing key for every component (the scheduler signs task tokens the api-server checks).
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret_file(home / "jwt_secret", lambda: secrets.token_urlsafe(32)),
            "AIRFLOW__API__SECRET_KEY": _secret_file(home / "api_secret_key", lambda: secrets.token_urlsafe(32)),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            # A scheduler that died (killed, or lost its database) leaves its tasks queued or running
            # under its job: the next scheduler resets them once that job is 30 s without a heartbeat
            # (scheduler_health_check_threshold), but it looks only every orphaned_tasks_check_interval
            # (default 5 min) after its start: 30 s keeps a restart from stalling the runs for minutes.
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": env.get(
                "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL", "30"
            ),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "GX_ANALYTICS_ENABLED": "False",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(config.REPO_ROOT), str(config.REPO_ROOT / "airflow_config"), env.get("PYTHONPATH")])
            ),
            # airflow_config/airflow_local_settings.py: the scheduler pre-imports task libraries (warm forks).
            "FLYWHEEL_PRELOAD": "1" if settings.preload else "0",
        }
    )
    if spark_connect and not settings.spark_remote:
        env["SPARK_REMOTE"] = f"sc://{settings.client_host}:{settings.spark_connect_port}"
    if settings.cluster:
        env.update(cluster.airflow_env(settings))
    return env


def check_java() -> None:
    try:
        subprocess.run(["java", "-version"], capture_output=True, check=True)
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        raise StackError("PySpark needs Java 17: install a JDK 17 (e.g. apt-get install openjdk-17-jdk-headless)") from exc


def start_spark_connect(settings: config.Settings, wait: bool = True) -> None:
    """A long-lived local Spark Connect server, so a task connects in ~1 s instead of starting a JVM."""
    check_java()
    name = "spark-connect"
    log = processes.log_of(settings, name)
    spark_dir = settings.home / "spark"
    spark_dir.mkdir(parents=True, exist_ok=True)
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    argv = [
        str(spark_home / "bin" / "spark-submit"),
        "--class",
        "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--name",
        "flywheel-spark-connect",
        "--master",
        settings.spark_master,
        "--driver-memory",
        settings.spark_driver_memory,
        "--conf",
        f"spark.connect.grpc.binding.address={settings.bind_host}",
        "--conf",
        f"spark.connect.grpc.binding.port={settings.spark_connect_port}",
        # The driver's own RPC and block manager ports: loopback too (Spark binds every interface otherwise).
        "--conf",
        f"spark.driver.bindAddress={settings.bind_host}",
        "--conf",
        f"spark.driver.host={settings.client_host}",
        "--conf",
        "spark.sql.shuffle.partitions=4",
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.sql.session.timeZone=UTC",
        "--conf",
        f"spark.sql.warehouse.dir={spark_dir / 'warehouse'}",
        "--conf",
        f"spark.driver.extraJavaOptions=-Dderby.system.home={spark_dir / 'derby'}",
        "--conf",
        f"spark.local.dir={spark_dir / 'tmp'}",
        *(cluster.spark_connect_conf(settings) if settings.cluster else []),
    ]
    env = config.child_env(SPARK_HOME=str(spark_home))
    env.pop("SPARK_REMOTE", None)
    processes.spawn(settings, name, argv, env, port=settings.spark_connect_port)
    if wait:
        processes.wait_port(settings.spark_connect_port, 120, "Spark Connect server", log, settings.client_host)


def start_mlflow_ui(settings: config.Settings, wait: bool = True) -> str:
    """The stack's MLflow server on its PostgreSQL store. Laptop profile: the UI on the store the
    tasks write to directly, artifacts in a folder under FLYWHEEL_HOME. Cluster profile: the tracking
    server every task talks to over HTTP, serving the artifacts too (``--serve-artifacts``)."""
    name = "mlflow"
    url = settings.mlflow_ui_url
    if not settings.mlflow_stack_server:
        return settings.mlflow_tracking_uri  # an MLflow server the user runs: nothing to start
    settings.mlflow_artifact_root.mkdir(parents=True, exist_ok=True)
    if settings.cluster:
        artifacts = ["--serve-artifacts", "--artifacts-destination", settings.mlflow_artifact_root.as_uri(), "--workers", "2"]
    else:
        artifacts = ["--default-artifact-root", settings.mlflow_artifact_root.as_uri(), "--workers", "1"]
    argv = [
        str(bin_dir() / "mlflow"), "server", *artifacts,
        "--host", settings.bind_host, "--port", str(settings.mlflow_port),
        "--static-prefix", config.MLFLOW_PATH,
    ]  # fmt: skip
    # MLflow 3's server runs a job executor (seven huey consumer processes polling the database) for
    # GenAI jobs this stack never submits: about a core's worth of CPU on a 2-core laptop.
    # The store's URL (it may hold a password) goes through the environment, not argv (`ps` shows argv).
    env = config.child_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_BACKEND_STORE_URI=settings.mlflow_backend_uri)
    processes.spawn(settings, name, argv, env, port=settings.mlflow_port)
    if wait:
        processes.wait_http(f"{url}/health", 180, "MLflow server", processes.log_of(settings, name))
    return url


def airflow(args: list[str], settings: config.Settings | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the ``airflow`` CLI of this environment with the stack's settings."""
    env = airflow_env(settings)
    return subprocess.run([str(bin_dir() / "airflow"), *args], env=env, capture_output=True, text=True, check=check)


def _migration_stamp(settings: config.Settings) -> str | None:
    """Airflow's version and the metadata DB's schema revision, or None if the DB has no schema yet."""
    import hashlib
    from importlib.metadata import version

    revision = database.schema_revision(settings, settings.airflow_sql_alchemy_conn)
    # The URL only as a digest: it may hold a password.
    where = hashlib.sha256(settings.airflow_sql_alchemy_conn.encode()).hexdigest()[:16]
    return f"apache-airflow {version('apache-airflow')} {where} {revision}" if revision else None


def init_airflow(settings: config.Settings) -> bool:
    """Create or upgrade Airflow's metadata database on the stack's PostgreSQL (idempotent); returns
    False when the schema was already migrated by this Airflow version (a no-op migrate costs ~10 s)."""
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    stamp_file = settings.airflow_home / "migrated"
    try:
        if stamp_file.is_file() and stamp_file.read_text() == _migration_stamp(settings):
            return False
    except database.DatabaseError as exc:
        raise StackError(str(exc)) from exc
    result = airflow(["db", "migrate"], settings, check=False)
    if result.returncode != 0:
        raise StackError(f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    stamp_file.write_text(_migration_stamp(settings) or "")
    return True


def start_database(settings: config.Settings) -> None:
    """The embedded PostgreSQL (unless FLYWHEEL_DATABASE_URL names a server) and the two databases."""
    try:
        if settings.database_embedded:
            database.start(settings)
        database.ensure_databases(settings)
    except database.DatabaseError as exc:
        raise StackError(str(exc)) from exc


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
    start_database(settings)
    admin_password(settings)  # generated before the api-server first reads the file
    if mlflow_ui or settings.cluster:  # on the cluster profile tasks need the server
        start_mlflow_ui(settings, wait=False)
    if spark_connect and not settings.spark_remote:
        if settings.cluster:
            cluster.start_spark(settings, wait=False)
        start_spark_connect(settings, wait=False)
    try:
        init_airflow(settings)
    except StackError as exc:
        raise StackError(f"{exc}\n(what already started keeps running: `make down` stops it)") from exc
    env = airflow_env(settings, spark_connect=spark_connect)
    airflow_bin = str(bin_dir() / "airflow")
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
        start_mlflow_ui(settings)  # running already: only waits until it answers
    if spark_connect and not settings.spark_remote:
        if settings.cluster:
            cluster.wait_spark_worker(settings)
        start_spark_connect(settings)
    if settings.cluster:
        cluster.wait_workers(settings)
    start_watchdog(settings, spark_connect, mlflow_ui)
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


def start_watchdog(settings: config.Settings, spark_connect: bool = True, mlflow_ui: bool = True) -> int:
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
    return processes.watchdog_record(settings)


def _database_error(settings: config.Settings) -> str | None:
    """None if Airflow's metadata database answers, else why not."""
    from sqlalchemy.engine import make_url

    url = settings.airflow_sql_alchemy_conn
    try:
        database.connect(settings, make_url(url).database, url).close()
    except database.DatabaseError as exc:
        return str(exc)
    return None


def watch(settings: config.Settings, spark_connect: bool = True, mlflow_ui: bool = True) -> None:
    """The watchdog (runs until stopped): :func:`flywheel.processes.supervise` over the components
    ``up`` started with these switches (the database aside), restarting with ``up`` once Airflow's
    database answers."""
    names = [n for n in expected_components(settings, spark_connect, mlflow_ui) if n != "postgres"]
    processes.supervise(
        settings, names, lambda: up(settings, spark_connect=spark_connect, mlflow_ui=mlflow_ui),
        lambda: _database_error(settings),
    )  # fmt: skip


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
        if not restarting or time.monotonic() > deadline or set(lost) & set(restarts(settings)["gave_up"]):
            break
        time.sleep(2)
    if dead:
        logs = ", ".join(
            str(settings.postgres_log if name == "postgres" else processes.log_of(settings, name)) for name in dead
        )
        why = ""
        if lost:
            error = _database_error(settings)
            why = f" ({', '.join(lost)}: lost the database: {next(iter(lost.values()))}" + (
                f"; it is still unreachable: {error})" if error else "; the watchdog did not restart it)"
            )
        raise StackError(f"{', '.join(dead)} exited while the stack was in use{why}; see {logs}")


def running(settings: config.Settings) -> list[str]:
    return [name for name, pid in status(settings).items() if pid]


def down(settings: config.Settings | None = None) -> list[str]:
    """Stop every component this stack started (SIGTERM to its process group, then SIGKILL), the
    database last; whatever the profile, every component with a pid file under FLYWHEEL_HOME."""
    settings = settings or config.load()
    stopped = [WATCHDOG] if processes.stop(settings, WATCHDOG) else []  # first: it would restart the others
    processes.watchdog_record(settings, reset=True)  # the next `up` counts its restarts from zero
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
        f"Airflow UI: {settings.airflow_url}  login: {ADMIN_USER} / {admin_password(settings)}"
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
            watch(settings, spark_connect=not args.no_spark_connect, mlflow_ui=not args.no_mlflow_ui)
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
            env = airflow_env(settings)
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
