"""An external PostgreSQL is one setting away: FLYWHEEL_DATABASE_URL (the server at 127.0.0.1:5432 on
CI machines). Airflow's metadata and MLflow's store land in their own databases there; the stack
neither starts nor stops that server."""

from __future__ import annotations

import os

import pytest

from flywheel import config, database, launch, stack
from tests.services import require

pytestmark = pytest.mark.integration

SERVER = os.environ.get("FLYWHEEL_TEST_EXTERNAL_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def external(tmp_path, monkeypatch):
    from urllib.parse import urlparse

    parsed = urlparse(SERVER)
    require("PostgreSQL", parsed.hostname or "127.0.0.1", parsed.port or 5432)
    prefix = f"flywheel_test_{os.getpid()}"
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", SERVER)
    monkeypatch.setenv("FLYWHEEL_AIRFLOW_DATABASE", f"{prefix}_airflow")
    monkeypatch.setenv("FLYWHEEL_MLFLOW_DATABASE", f"{prefix}_mlflow")
    for name in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    settings = config.load()
    yield settings
    database.drop_databases(settings, [settings.airflow_database, settings.mlflow_database])


def test_airflow_and_mlflow_live_in_their_own_databases_on_the_external_server(external):
    settings = external
    assert settings.database_embedded is False
    assert settings.airflow_sql_alchemy_conn.startswith("postgresql+psycopg2://")
    assert settings.airflow_sql_alchemy_conn.endswith(f"/{settings.airflow_database}")

    launch.start_database(settings)  # creates the two databases, starts nothing
    assert not settings.postgres_data_dir.exists()
    assert stack.status(settings)["postgres"] == -1  # external: not ours to run

    assert launch.init_airflow(settings) is True
    assert launch.init_airflow(settings) is False  # schema already at this Airflow's head: no second migrate
    check = launch.airflow(["db", "check"], settings, check=False)
    assert check.returncode == 0, check.stderr[-2000:]
    assert database.schema_revision(settings, settings.airflow_sql_alchemy_conn)

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    experiment_id = client.create_experiment("external-check", artifact_location=settings.mlflow_artifact_root.as_uri())
    conn = database.connect(settings, settings.mlflow_database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name FROM experiments WHERE experiment_id = %s", (int(experiment_id),))
            assert cur.fetchone() == ("external-check",)
    finally:
        conn.close()
    assert stack.down(settings) == []  # the external server is left alone
    assert not list(settings.home.rglob("*.db")), "nothing may fall back to SQLite"
