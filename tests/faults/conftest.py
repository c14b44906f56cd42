"""The faults tier: real processes, real signals, each test asserting what is left afterwards.

The tests that need the real Airflow stack drive the session's one stack (``airflow_stack``, from
tests/services.py), after the e2e tier's story and before its replay-clock test (tests/conftest.py
orders them there; run alone, the tier starts that stack itself):

- ``faults_stack``: that stack with a Spark Connect server for its tasks (a JVM per
  ``build_features`` task would double a backfill's time), on the port the replay-clock test uses,
  so that test finds the server running;
- ``session_database``: the settings of the suite's embedded PostgreSQL (tests/conftest.py), the
  server of the stack's Airflow metadata and MLflow store: a test restarts it with them.
"""

from __future__ import annotations

import os

import pytest

from flywheel import config
from tests.services import use_the_session_stack

# tests/conftest.py points FLYWHEEL_HOME at the session's home before this file is imported;
# the e2e fixtures point it at the stack's home later.
_SESSION_HOME = os.environ["FLYWHEEL_HOME"]
SPARK_CONNECT_PORT = "18003"


def pytest_configure(config):
    use_the_session_stack(config)


@pytest.fixture(scope="session")
def faults_stack(airflow_stack):
    """The session's stack with a Spark Connect server for its tasks; its settings. Only the scheduler
    (whose forks run the tasks) and the watchdog (which restarts with these settings) are restarted
    for it: the other components do not use Spark."""
    from flywheel import processes, stack, watchdog

    patch = pytest.MonkeyPatch()
    patch.setenv("FLYWHEEL_SPARK_CONNECT_PORT", SPARK_CONNECT_PORT)
    settings = config.load()
    for name in (watchdog.WATCHDOG, "airflow-scheduler"):
        processes.stop(settings, name)
    stack.up(settings)  # starts Spark Connect, then the scheduler and the watchdog in this environment
    yield settings
    patch.undo()


@pytest.fixture(scope="session")
def session_database():
    """Settings whose embedded PostgreSQL is the suite's server (the one every test database is on)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLYWHEEL_HOME", _SESSION_HOME)
        patch.delenv("FLYWHEEL_DATABASE_URL", raising=False)
        settings = config.load()
    assert settings.database_embedded and settings.database_url == os.environ["FLYWHEEL_DATABASE_URL"], (
        "the faults tier expected the suite's embedded PostgreSQL (tests/conftest.py)"
    )
    return settings
