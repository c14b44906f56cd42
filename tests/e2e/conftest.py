"""One real stack for the whole e2e tier (scheduler, api-server, dag-processor on PostgreSQL): the
drift loop and the browser tests share it, in that order (pytest runs the files alphabetically).

Small real data (January 2013): a champion is trained on 8 days and two later days are scored in
this process with the same functions the DAGs run; the tests then drive the stack.
"""

from __future__ import annotations

import pytest

from flywheel import config, features
from tests.e2e.story import AIRFLOW_PORT, CHAMPION_AS_OF, CLEAN_DAY, DAYS, DRIFT_DAY, ENV, inject_drift
from tests.services import fresh_database


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """Lake and registry state built in-process with the same functions the DAGs run."""
    from flywheel import landing
    from flywheel.registry import promotion
    from flywheel.scoring import score_partition
    from flywheel.training import data, train
    from flywheel.validation import validate_features, validate_landing
    from spark_jobs import build_features

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
        build_features.run(day, output_dataset=features.CANDIDATE_DATASET)
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
    from flywheel import stack

    try:
        stack.up(prepared, spark_connect=False)
        yield prepared
    finally:
        stack.down(prepared)


