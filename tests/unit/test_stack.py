"""The local stack refuses to start a server on a port something else already answers on."""

from __future__ import annotations

import socket
import sys

import pytest

from flywheel import config, stack


def test_spawn_refuses_a_port_another_process_holds(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    settings = config.load()
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(stack.StackError, match=f"port {port} .* already in use"):
            stack._spawn(settings, "airflow-api-server", [sys.executable, "-c", "pass"], {}, port=port)
    assert stack.status(settings)["airflow-api-server"] is None  # nothing was started


def test_airflow_env_keeps_state_under_flywheel_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    env = stack.airflow_env(config.load())
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["SPARK_REMOTE"] == f"sc://localhost:{stack.SPARK_CONNECT_PORT}"


def test_an_exited_unreaped_child_counts_as_dead():
    import subprocess
    import time

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(1.0)  # exited, not yet reaped: a zombie
    assert stack._alive(child.pid) is False
    assert stack._alive(__import__("os").getpid()) is True
