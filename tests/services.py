"""Test helpers for the services a test talks to: the session's PostgreSQL, and external ones.

A test that needs an external service (PostgreSQL at 127.0.0.1:5432, Redis, ...) calls
:func:`require`: unreachable on a laptop, the test is skipped with a message naming the service;
under CI (``FLYWHEEL_REQUIRE_SERVICES=1``, set by ``.ci/run``) the same situation fails.

Also the one real stack of the session (fixtures ``prepared`` and ``airflow_stack``): the e2e tier's
and the faults tier's conftest.py register this module as a plugin (:func:`use_the_session_stack`),
so both tiers share one stack (a fixture defined in two conftests would be two stacks).
"""

from __future__ import annotations

import os
import socket

import pytest


def require(name: str, host: str, port: int) -> None:
    """Skip (laptop) or fail (CI) unless ``name`` accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=3):
            return
    except OSError as exc:
        message = f"{name} is not reachable at {host}:{port} ({exc})"
    if os.environ.get("FLYWHEEL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}; FLYWHEEL_REQUIRE_SERVICES=1 requires it")
    pytest.skip(f"{message}: start it to run this test")


def fresh_database(name: str, driver: str = "postgresql") -> str:
    """An empty database ``name`` on the session's PostgreSQL (dropped first if it exists); returns
    its SQLAlchemy URL with ``driver`` (``postgresql`` for MLflow, ``postgresql+psycopg2`` for Airflow)."""
    from flywheel import config, database

    settings = config.load()
    database.drop_databases(settings, [name])
    database.ensure_databases(settings, [name])
    return config.with_database(settings.database_url, name, driver)


def require_program(name: str, path: str) -> str:
    """Skip (laptop) or fail (CI) unless the program ``name`` is at ``path``; returns the path."""
    if os.access(path, os.X_OK):
        return path
    message = f"{name} is not installed at {path}"
    if os.environ.get("FLYWHEEL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}; FLYWHEEL_REQUIRE_SERVICES=1 requires it (.ci/run installs Debian's chromium)")
    pytest.skip(f"{message}: install it (Debian: apt-get install chromium) to run the browser tests")


def listening_addresses(settings) -> set[tuple[str, int]]:
    """(ip, port) of every TCP listener of the stack's processes and their children."""
    import psutil

    from flywheel import stack

    out = set()
    for pid in filter(None, stack.status(settings).values()):
        if pid < 0:
            continue
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            try:
                conns = proc.net_connections(kind="inet")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            out |= {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}
    return out


def feature_rows_digest(settings, day) -> str:
    """A digest of a features partition's rows in a canonical order (Spark's file names and row order
    may differ from run to run; the rows may not)."""
    import hashlib

    import pandas as pd

    from flywheel import catalog

    frame = catalog.FEATURES.read_frame(day, settings.lake)
    frame = frame[sorted(frame.columns)].sort_values(sorted(frame.columns)).reset_index(drop=True)
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes()).hexdigest()


# -- the session's one real stack (the e2e tier's story; the faults tier drives it afterwards) ------


def asset_triggered_run(api, dag_id: str, key: str, timeout: float = 600) -> dict:
    """The run of ``dag_id`` the scheduler created from an asset event for partition ``key``, once it
    has finished (there must be exactly one); nobody triggers it."""
    import time

    deadline = time.monotonic() + timeout
    while not (runs := [r for r in api.runs(dag_id, order_by="run_after") if r.get("partition_key") == key]):
        assert time.monotonic() < deadline, f"no {dag_id} run of partition {key} within {timeout:.0f}s of its event"
        time.sleep(2)
    assert len(runs) == 1, runs
    assert runs[0]["run_type"] == "asset_triggered" and runs[0]["logical_date"] is None, runs[0]
    return api.wait_run(dag_id, runs[0]["dag_run_id"], timeout=max(60.0, deadline - time.monotonic()))


def use_the_session_stack(config) -> None:
    """Make ``prepared`` and ``airflow_stack`` (below) visible to every test: call it from a conftest's
    ``pytest_configure``. Registered once, whichever tier asks first (``register``, not
    ``import_plugin``: this module is imported already, too late for pytest's assert rewriting)."""
    import sys

    if not config.pluginmanager.has_plugin(__name__):
        config.pluginmanager.register(sys.modules[__name__], __name__)


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """Lake and registry state built in-process with the same functions the DAGs run (tests/e2e/story.py:
    a champion trained on 8 days of January 2013, two later days scored, one with injected drift)."""
    from flywheel import catalog, config, landing
    from flywheel.registry import promotion
    from flywheel.scoring import score_partition
    from flywheel.training import data, train
    from flywheel.validation import validate_features, validate_landing
    from spark_jobs import build_features
    from tests.e2e.story import AIRFLOW_PORT, CHAMPION_AS_OF, CLEAN_DAY, DAYS, DRIFT_DAY, ENV, inject_drift

    root = tmp_path_factory.mktemp("e2e")
    patch = pytest.MonkeyPatch()
    patch.setenv("FLYWHEEL_HOME", str(root / "home"))
    # Its own Airflow and MLflow databases on the session's PostgreSQL: the stack starts from empty ones.
    patch.setenv("FLYWHEEL_AIRFLOW_DATABASE", "airflow_e2e")
    patch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", fresh_database("airflow_e2e", "postgresql+psycopg2"))
    patch.setenv("MLFLOW_TRACKING_URI", fresh_database("mlflow_e2e"))
    patch.setenv("FLYWHEEL_AIRFLOW_PORT", str(AIRFLOW_PORT))
    patch.delenv("FLYWHEEL_SOURCE", raising=False)
    for key, value in ENV.items():
        patch.setenv(key, value)
    settings = config.load()
    for day in DAYS:
        landing.land(day)
        validate_landing(day)
        build_features.run(day, output_dataset=catalog.FEATURES_CANDIDATE.dataset)
        validate_features(day)
    result = train.train(CHAMPION_AS_OF, window_days=8, n_trials=1)
    version = int(result["model_version"])
    holdout = data.assemble(CHAMPION_AS_OF, 8, settings).split(settings.holdout_days).holdout
    challenger, champion, champion_version = promotion.evaluate_challenger(version, holdout, settings)
    record = promotion.promote_or_reject(
        version, challenger, champion, champion_version, settings, {"as_of": CHAMPION_AS_OF.isoformat()}
    )
    assert record["decision"] == "promoted", record["reason"]
    inject_drift(DRIFT_DAY, settings)
    for day in (CLEAN_DAY, DRIFT_DAY):
        score_partition(day, settings)
    yield settings
    patch.undo()


@pytest.fixture(scope="session")
def airflow_stack(prepared):
    """The stack (scheduler, api-server, dag-processor, triggerer, MLflow UI; no Spark Connect) on the
    prepared state, up for the rest of the session."""
    from flywheel import stack

    try:
        stack.up(prepared, spark_connect=False)
        yield prepared
    finally:
        stack.down(prepared)
