"""The cluster profile's own parts (``FLYWHEEL_PROFILE=cluster``): a Spark standalone master and
worker, and Celery workers of Airflow's CeleryExecutor on a Redis broker.

Each is a separate process talking to the others over the network (loopback here), as on a real
cluster: the Spark Connect server submits to the master, the master hands the worker's cores to it,
the scheduler queues tasks on Redis and the workers run them. The pyspark wheel ships the master
and worker classes but not the sbin scripts that start them, so they start through ``spark-class``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from flywheel import config, processes

# Every queue a worker serves: Airflow's default one, and `spark` for the Spark tasks
# (build_features); in production the spark queue is served by workers sized for Spark clients.
QUEUES = ("default", "spark")
SPARK_MASTER = "spark-master"
SPARK_WORKER = "spark-worker-1"


def worker_names(settings: config.Settings) -> list[str]:
    return [f"airflow-worker-{i}" for i in range(1, settings.celery_workers + 1)]


def worker_hostname(name: str) -> str:
    """The host name a worker's task instances record (Airflow's ``hostname_callable`` reads it)."""
    return f"flywheel-{name.removeprefix('airflow-')}"


def components(settings: config.Settings) -> list[str]:
    """The cluster profile's processes besides the laptop stack's, in start order."""
    return [SPARK_MASTER, SPARK_WORKER, *worker_names(settings)]


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _spark_env(settings: config.Settings) -> dict[str, str]:
    # SPARK_LOCAL_IP: the web UIs and the RPC endpoints bind there (Spark binds every interface otherwise).
    env = config.child_env(SPARK_HOME=str(_spark_home()), SPARK_LOCAL_IP=settings.client_host)
    # No REST submission server (port 6066): it would take jobs from anyone who can reach it, unauthenticated.
    env["SPARK_MASTER_OPTS"] = " ".join(filter(None, [env.get("SPARK_MASTER_OPTS"), "-Dspark.master.rest.enabled=false"]))
    env.pop("SPARK_REMOTE", None)
    return env


def start_spark(settings: config.Settings, wait: bool = True) -> None:
    """The standalone master, then one worker offering ``spark_worker_cores`` cores to it."""
    spark_class = str(_spark_home() / "bin" / "spark-class")
    work = settings.home / "spark" / "work"
    work.mkdir(parents=True, exist_ok=True)
    env = _spark_env(settings)
    host = settings.client_host
    processes.spawn(
        settings, SPARK_MASTER,
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", host,
         "--port", str(settings.spark_master_port), "--webui-port", str(settings.spark_master_ui_port)],
        env, port=settings.spark_master_port,
    )  # fmt: skip
    processes.wait_port(settings.spark_master_port, 120, "Spark master", processes.log_of(settings, SPARK_MASTER), host)
    processes.spawn(
        settings, SPARK_WORKER,
        [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", host,
         "--port", str(settings.spark_worker_port), "--webui-port", str(settings.spark_worker_ui_port),
         "--cores", str(settings.spark_worker_cores), "--memory", settings.spark_worker_memory,
         "--work-dir", str(work), settings.spark_master_url],
        env, port=settings.spark_worker_port,
    )  # fmt: skip
    if wait:
        wait_spark_worker(settings)


def master_status(settings: config.Settings) -> dict[str, Any]:
    """The master's status (JSON at ``/json/``): workers, running and completed applications."""
    with urllib.request.urlopen(f"{settings.spark_master_ui_url}/json/", timeout=10) as resp:
        return json.load(resp)


def wait_spark_worker(settings: config.Settings, timeout: float = 120) -> None:
    """Until the master lists an ALIVE worker."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(w.get("state") == "ALIVE" for w in master_status(settings).get("workers", [])):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            pass
        time.sleep(1)
    raise processes.StackError(
        f"no Spark worker registered with {settings.spark_master_url} within {timeout:.0f}s; "
        f"see {processes.log_of(settings, SPARK_WORKER)} and {processes.log_of(settings, SPARK_MASTER)}"
    )


def airflow_env(settings: config.Settings) -> dict[str, str]:
    """What the cluster profile adds to every Airflow process's environment."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": settings.celery_broker_url,
        # The result backend defaults to the metadata database (db+<sql_alchemy_conn>).
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(settings.celery_concurrency),
        # As many task slots as the workers have; each Spark task mostly waits for the cluster.
        "AIRFLOW__CORE__PARALLELISM": str(settings.celery_workers * settings.celery_concurrency),
    }


def check_broker(settings: config.Settings) -> None:
    """Fail early, naming the broker, when nothing answers at FLYWHEEL_CELERY_BROKER_URL."""
    import socket

    parsed = urlparse(settings.celery_broker_url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    try:
        with socket.create_connection((host, port), timeout=5):
            return
    except OSError as exc:
        raise processes.StackError(
            f"the Celery broker at {host}:{port} (FLYWHEEL_CELERY_BROKER_URL) does not answer ({exc}): "
            "start Redis (e.g. `redis-server --bind 127.0.0.1`) or point the setting at yours"
        ) from exc


def start_workers(settings: config.Settings, env: dict[str, str], airflow_bin: str) -> None:
    """``airflow celery worker`` processes, each with its own Celery node name and host name."""
    run = processes.run_dir(settings)
    for name in worker_names(settings):
        host = worker_hostname(name)
        worker_env = dict(
            env,
            FLYWHEEL_WORKER_HOSTNAME=host,
            AIRFLOW__CORE__HOSTNAME_CALLABLE="flywheel.config.worker_hostname",
        )
        argv = [
            airflow_bin, "celery", "worker",
            "--celery-hostname", f"{host}@%h",
            "--queues", ",".join(QUEUES),
            "--concurrency", str(settings.celery_concurrency),
            # Its own pid file (the default one in AIRFLOW_HOME would be shared by the workers), and no
            # log server: it binds every interface; the api-server reads the task logs from disk here.
            "--pid", str(run / f"{name}.celery.pid"),
            "--skip-serve-logs",
        ]  # fmt: skip
        processes.spawn(settings, name, argv, worker_env)


def wait_workers(settings: config.Settings, timeout: float = 180) -> None:
    """Until every Celery worker answers a ping through the broker (a worker takes ~10 s to start)."""
    import time

    from celery import Celery

    app = Celery(broker=settings.celery_broker_url)
    wanted = {worker_hostname(name): name for name in worker_names(settings)}
    deadline = time.monotonic() + timeout
    missing = set(wanted)
    while time.monotonic() < deadline:
        answered = {node.split("@")[0] for reply in app.control.ping(timeout=2) for node in reply}
        missing = set(wanted) - answered
        if not missing:
            return
        dead = [wanted[host] for host in missing if processes.pid_of(settings, wanted[host]) is None]
        if dead:
            break
    logs = ", ".join(str(processes.log_of(settings, wanted[host])) for host in sorted(missing))
    raise processes.StackError(
        f"Celery worker(s) {', '.join(sorted(missing))} did not answer on the broker within {timeout:.0f}s "
        f"(or exited); see {logs}"
    )


def spark_connect_conf(settings: config.Settings) -> list[str]:
    """The Spark Connect server's extra settings on the cluster: executors on the standalone worker."""
    return [
        "--conf", f"spark.executor.memory={settings.spark_worker_memory}",
        "--conf", f"spark.cores.max={settings.spark_worker_cores}",
    ]  # fmt: skip


def where_it_ran(settings: config.Settings, task_instances: list[dict[str, Any]]) -> list[str]:
    """Lines for the demo's summary: which worker ran how many tasks (per queue), where Spark ran
    the job, where MLflow kept the runs."""
    from collections import Counter

    counts = Counter((ti.get("hostname") or "?", ti.get("queue") or "?") for ti in task_instances if ti.get("state") == "success")
    hosts = sorted({host for host, _ in counts})
    lines = [
        "Workers:    "
        + "; ".join(
            f"{host}: " + ", ".join(f"{n} on {queue}" for (h, queue), n in sorted(counts.items()) if h == host)
            for host in hosts
        )
    ]
    try:
        status = master_status(settings)
        apps = ", ".join(f"{a['name']} ({a['id']}, {a['cores']} cores)" for a in status.get("activeapps", []))
        workers = ", ".join(f"{w['host']}:{w['port']} {w['state']}" for w in status.get("workers", []))
        lines.append(f"Spark:      master {status.get('url')}: workers {workers}; applications {apps}")
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as exc:
        lines.append(f"Spark:      master {settings.spark_master_ui_url} did not answer ({exc})")
    lines.append(f"MLflow:     tasks used the tracking server {settings.mlflow_tracking_uri} (runs, models, artifacts)")
    return lines
