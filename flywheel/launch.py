"""How each component of the local stack is launched: the generated login and secrets, Airflow's
environment, CLI and migration, the embedded PostgreSQL, the MLflow UI and the Spark Connect server.

:mod:`flywheel.stack` composes them (``up``, ``down``, ``status``); this module imports no Airflow:
it drives the ``airflow`` CLI, exactly as a user would.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from flywheel import cluster, config, database, processes
from flywheel.processes import StackError

ADMIN_USER = "admin"


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

