"""The local stack: Airflow (api-server, scheduler, dag-processor) and a Spark Connect server.

``python -m flywheel.stack up|down|status|env`` starts, stops or shows the processes that
``make up``, ``make down`` and ``make demo`` use. Everything they write (metadata DB, logs,
pid files) lives under ``FLYWHEEL_HOME``. This module imports no Airflow: it drives the
``airflow`` CLI and the REST API, exactly as a user would.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from flywheel import config

AIRFLOW_PORT = int(os.environ.get("FLYWHEEL_AIRFLOW_PORT") or 8080)
MLFLOW_PORT = int(os.environ.get("FLYWHEEL_MLFLOW_PORT") or 5000)
SPARK_CONNECT_PORT = int(os.environ.get("FLYWHEEL_SPARK_CONNECT_PORT") or 15002)
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor")


class StackError(RuntimeError):
    """A local component failed to start or to answer."""


def bin_dir() -> Path:
    """The folder of the running interpreter's scripts (the virtual environment's bin/)."""
    return Path(sys.executable).parent


def airflow_env(settings: config.Settings | None = None, spark_connect: bool = True) -> dict[str, str]:
    """The environment every Airflow process of the local stack runs with (embedded defaults)."""
    settings = settings or config.load()
    home = settings.airflow_home
    env = dict(os.environ)
    env.update(
        {
            "FLYWHEEL_HOME": str(settings.home),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(config.REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(config.REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # Two cores: more parallel task processes only thrash (DESIGN.md, known traps).
            "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "2"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": env.get(
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}"
            ),
            "AIRFLOW__API__PORT": str(AIRFLOW_PORT),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{AIRFLOW_PORT}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{AIRFLOW_PORT}/execution/",
            # Laptop stack only: every visitor of the UI/API is an admin, no login.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "GX_ANALYTICS_ENABLED": "False",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(config.REPO_ROOT), str(config.REPO_ROOT / "airflow_config"), env.get("PYTHONPATH")])
            ),
            # airflow_config/airflow_local_settings.py: the scheduler pre-imports task libraries (warm forks).
            "FLYWHEEL_PRELOAD": env.get("FLYWHEEL_PRELOAD", "1"),
        }
    )
    if spark_connect and not settings.spark_remote:
        env["SPARK_REMOTE"] = f"sc://localhost:{SPARK_CONNECT_PORT}"
    return env


def _run_dir(settings: config.Settings) -> Path:
    path = settings.home / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _log_dir(settings: config.Settings) -> Path:
    path = settings.home / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _alive(pid: int) -> bool:
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


def _pid(settings: config.Settings, name: str) -> int | None:
    pidfile = _run_dir(settings) / f"{name}.pid"
    if not pidfile.is_file():
        return None
    try:
        pid = int(pidfile.read_text().strip())
    except ValueError:
        pid = -1
    if pid <= 0 or not _alive(pid):
        pidfile.unlink(missing_ok=True)
        return None
    return pid


def _port_in_use(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _spawn(
    settings: config.Settings, name: str, argv: list[str], env: dict[str, str], port: int | None = None
) -> int:
    existing = _pid(settings, name)
    if existing:
        return existing
    if port is not None and _port_in_use(port):
        # Without this check the new stack would silently talk to whatever answers there (e.g. the
        # stack of another checkout or FLYWHEEL_HOME) while its own server fails to bind.
        raise StackError(
            f"port {port} (for {name}) is already in use by a process this stack ({settings.home}) did not start: "
            "stop it (`make down` in the checkout that started it, with its FLYWHEEL_HOME) "
            "or choose other ports (FLYWHEEL_AIRFLOW_PORT, FLYWHEEL_MLFLOW_PORT, FLYWHEEL_SPARK_CONNECT_PORT)"
        )
    log = (_log_dir(settings) / f"{name}.log").open("ab")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (_run_dir(settings) / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def _wait_http(url: str, timeout: float, name: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status < 500:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise StackError(f"{name} did not answer on {url} within {timeout:.0f}s; see {log}")


def _wait_port(port: int, timeout: float, name: str, log: Path) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(1)
    raise StackError(f"{name} did not listen on port {port} within {timeout:.0f}s; see {log}")


def check_java() -> None:
    try:
        subprocess.run(["java", "-version"], capture_output=True, check=True)
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        raise StackError("PySpark needs Java 17: install a JDK 17 (e.g. apt-get install openjdk-17-jdk-headless)") from exc


def start_spark_connect(settings: config.Settings) -> None:
    """A long-lived local Spark Connect server, so a task connects in ~1 s instead of starting a JVM."""
    check_java()
    name = "spark-connect"
    log = _log_dir(settings) / f"{name}.log"
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
        os.environ.get("FLYWHEEL_SPARK_DRIVER_MEMORY", "3g"),
        "--conf",
        "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf",
        f"spark.connect.grpc.binding.port={SPARK_CONNECT_PORT}",
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
    ]
    env = dict(os.environ, SPARK_HOME=str(spark_home))
    env.pop("SPARK_REMOTE", None)
    _spawn(settings, name, argv, env, port=SPARK_CONNECT_PORT)
    _wait_port(SPARK_CONNECT_PORT, 120, "Spark Connect server", log)


def start_mlflow_ui(settings: config.Settings) -> str:
    """The MLflow UI on the same store the tasks write to (embedded SQLite unless MLFLOW_TRACKING_URI says otherwise)."""
    name = "mlflow"
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    settings.mlflow_artifact_root.mkdir(parents=True, exist_ok=True)
    argv = [
        str(bin_dir() / "mlflow"),
        "server",
        "--backend-store-uri",
        uri,
        "--default-artifact-root",
        settings.mlflow_artifact_root.as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(MLFLOW_PORT),
        "--workers",
        "1",
    ]
    _spawn(settings, name, argv, dict(os.environ), port=MLFLOW_PORT)
    url = f"http://localhost:{MLFLOW_PORT}"
    _wait_http(f"{url}/health", 180, "MLflow UI", _log_dir(settings) / f"{name}.log")
    return url


def airflow(args: list[str], settings: config.Settings | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the ``airflow`` CLI of this environment with the stack's settings."""
    env = airflow_env(settings)
    return subprocess.run([str(bin_dir() / "airflow"), *args], env=env, capture_output=True, text=True, check=check)


def init_airflow(settings: config.Settings) -> None:
    """Create or upgrade the SQLite metadata DB under FLYWHEEL_HOME (idempotent)."""
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    result = airflow(["db", "migrate"], settings, check=False)
    if result.returncode != 0:
        raise StackError(f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")


def up(settings: config.Settings | None = None, spark_connect: bool = True, mlflow_ui: bool = True) -> None:
    """Start whatever is not running yet and wait until the Airflow API (and the MLflow UI) answer."""
    settings = settings or config.load()
    if mlflow_ui:
        start_mlflow_ui(settings)
    if spark_connect and not settings.spark_remote:
        start_spark_connect(settings)
    init_airflow(settings)
    env = airflow_env(settings, spark_connect=spark_connect)
    airflow_bin = str(bin_dir() / "airflow")
    for component in AIRFLOW_COMPONENTS:
        argv = [airflow_bin, component]
        if component == "api-server":
            argv += ["--port", str(AIRFLOW_PORT)]
        _spawn(settings, f"airflow-{component}", argv, env, port=AIRFLOW_PORT if component == "api-server" else None)
    _wait_http(
        f"http://localhost:{AIRFLOW_PORT}/api/v2/monitor/health", 180, "Airflow API server",
        _log_dir(settings) / "airflow-api-server.log",
    )


def ensure_airflow(settings: config.Settings) -> list[str]:
    """Restart any Airflow component of the stack that has exited; returns the restarted ones.

    With the embedded SQLite metadata DB the scheduler can die on a write conflict with the API
    server (Airflow supports concurrent backfills only on PostgreSQL/MySQL); its log says why.
    """
    env = airflow_env(settings)
    airflow_bin = str(bin_dir() / "airflow")
    restarted = []
    for component in AIRFLOW_COMPONENTS:
        name = f"airflow-{component}"
        if _pid(settings, name) is None:
            argv = [airflow_bin, component] + (["--port", str(AIRFLOW_PORT)] if component == "api-server" else [])
            _spawn(settings, name, argv, env, port=AIRFLOW_PORT if component == "api-server" else None)
            restarted.append(name)
    return restarted


def down(settings: config.Settings | None = None) -> list[str]:
    """Stop every component this stack started (SIGTERM to its process group, then SIGKILL)."""
    settings = settings or config.load()
    stopped = []
    for name in [f"airflow-{c}" for c in AIRFLOW_COMPONENTS] + ["spark-connect", "mlflow"]:
        pid = _pid(settings, name)
        if pid is None:
            continue
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(30):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        (_run_dir(settings) / f"{name}.pid").unlink(missing_ok=True)
        stopped.append(name)
    return stopped


def status(settings: config.Settings | None = None) -> dict[str, int | None]:
    settings = settings or config.load()
    names = [f"airflow-{c}" for c in AIRFLOW_COMPONENTS] + ["spark-connect", "mlflow"]
    return {name: _pid(settings, name) for name in names}


def api(method: str, path: str, body: dict[str, Any] | None = None, attempts: int = 8) -> Any:
    """Call the local Airflow REST API (v2); an HTTP error raises StackError with Airflow's answer.

    The laptop stack keeps Airflow's metadata in SQLite, which answers 503 "Database is locked" while
    the scheduler writes: such a call is retried with backoff (PostgreSQL, via
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, does not need it).
    """
    url = f"http://localhost:{AIRFLOW_PORT}/api/v2/{path.lstrip('/')}"
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(1, attempts + 1):
        req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:1000]
            if exc.code == 503 and "locked" in detail.lower() and attempt < attempts:
                time.sleep(min(2**attempt, 20))
                continue
            raise StackError(f"{method} {url} -> {exc.code}: {detail}") from exc
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.stack", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("up", "down", "status", "env"))
    args = parser.parse_args(argv)
    settings = config.load()
    if args.command == "up":
        up(settings)
        print(f"Airflow UI: http://localhost:{AIRFLOW_PORT}  (logs: {settings.home / 'logs'})")
        print(f"MLflow UI:  http://localhost:{MLFLOW_PORT}")
    elif args.command == "down":
        stopped = down(settings)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    elif args.command == "status":
        for name, pid in status(settings).items():
            print(f"{name:24} {'running, pid ' + str(pid) if pid else 'stopped'}")
    else:
        env = airflow_env(settings)
        for key in sorted(k for k in env if k.startswith(("AIRFLOW", "FLYWHEEL", "SPARK", "PYTHONPATH"))):
            print(f"export {key}={env[key]!s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
