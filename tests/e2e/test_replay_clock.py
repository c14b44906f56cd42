"""The replay clock with the real scheduler: nobody triggers anything, the scheduler creates the runs.

Runs last in the e2e tier (tests/conftest.py sorts it there): it restarts the tier's Airflow with
the replay clock on, one 2013 day a minute from 11 January (the tier's lake holds 1..10 January and
a champion). Within a bounded time the scheduler must create at least two ``scheduled`` runs of
``flights_features``, each processing the clock's next day, and the scoring and monitoring runs of
the same days must follow, created by the asset events (partition key = the day), and succeed.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.services import feature_rows_digest

pytestmark = [pytest.mark.e2e]

FIRST = dt.date(2013, 1, 11)
SECONDS = 60
DAILY = ("flights_features", "flights_scoring", "flights_monitoring")


CLOCK_DAYS = {(FIRST + dt.timedelta(days=n)).isoformat() for n in range(2)}


def _scheduled(api, dag_id: str) -> list[dict]:
    """The runs the scheduler made by itself for the clock's days: on the clock (features), from the
    asset events of those days (the others; earlier tiers' backfills left asset-triggered runs of
    other days)."""
    if dag_id == "flights_features":
        return [r for r in api.runs(dag_id, order_by="run_after") if r["run_type"] == "scheduled"]
    return [
        r for r in api.runs(dag_id, order_by="run_after")
        if r["run_type"] == "asset_triggered" and r.get("partition_key") in CLOCK_DAYS
    ]  # fmt: skip


@pytest.mark.timeout(900)
def test_the_scheduler_runs_the_loop_on_the_replay_clock_by_itself(airflow_stack, monkeypatch):
    from flywheel import clock, config, demo_runs, lake, live, stack

    now = dt.datetime.now(dt.UTC)
    for key, value in live.clock_env(FIRST, SECONDS, now, lead=45).items():
        monkeypatch.setenv(key, value)
    # A Spark Connect server for the tasks from now on (a JVM per build_features task is slower than a tick).
    monkeypatch.setenv("FLYWHEEL_SPARK_CONNECT_PORT", "18003")
    settings = config.load()
    replay = settings.replay
    assert replay is not None and replay.first_day == FIRST
    stack.restart_airflow(settings)
    run = demo_runs.Demo(settings, FIRST, FIRST)
    for dag_id in DAILY:
        demo_runs.wait_for_dag(run, dag_id)  # unpauses it
    api = run.api

    deadline = time.monotonic() + 600
    done: dict[str, list[dict]] = {}
    while time.monotonic() < deadline:
        done = {dag_id: [r for r in _scheduled(api, dag_id) if r["state"] == "success"] for dag_id in DAILY}
        if all(len(runs) >= 2 for runs in done.values()):
            break
        failed = [r for dag_id in DAILY for r in _scheduled(api, dag_id) if r["state"] == "failed"]
        assert not failed, [(r["dag_id"], r["dag_run_id"], api.task_states(r["dag_id"], r["dag_run_id"])) for r in failed]
        time.sleep(5)
    else:
        pytest.fail(f"fewer than two successful scheduled runs of each daily DAG within 10 minutes: {done}")

    features = done["flights_features"]
    days = [clock.data_day(dt.datetime.fromisoformat(r["logical_date"])) for r in features]
    # Each run the next day of the clock, from its first day, none before its tick.
    assert days[:2] == [FIRST, FIRST + dt.timedelta(days=1)], days
    for r, day in zip(features, days, strict=True):
        assert dt.datetime.fromisoformat(r["start_date"]) >= replay.run_time(day), (r, day)
    for r, day in zip(features, days, strict=True):
        landed = api.xcom_value("flights_features", r["dag_run_id"], "land")
        assert landed["days"] == [day.isoformat()]
        assert lake.exists("features", "flights", day, settings.lake)
    # Scoring and monitoring ran for the same days, created by the asset events, after the features.
    for dag_id, zone in (("flights_scoring", "predictions"), ("flights_monitoring", "monitoring")):
        by_key = {r["partition_key"]: r for r in done[dag_id]}
        for r, day in zip(features[:2], days[:2], strict=True):
            follower = by_key.get(day.isoformat())
            assert follower is not None, f"{dag_id} has no asset-triggered run for {day}: {sorted(by_key)}"
            assert follower["logical_date"] is None and follower["run_after"] >= r["start_date"]
        dataset = "daily" if zone == "monitoring" else "flights"
        assert all(lake.exists(zone, dataset, day, settings.lake) for day in days[:2])

    # A range run of earlier days beside the clock: never at the same time as a run of the clock
    # (one run at a time on the clock), and the days it rebuilds keep their rows.
    earlier = [dt.date(2013, 1, 7), dt.date(2013, 1, 8)]
    before = {day: feature_rows_digest(settings, day) for day in earlier}
    ranged = api.wait_run(
        "flights_features",
        api.trigger("flights_features", {"from_ds": earlier[0].isoformat(), "to_ds": earlier[-1].isoformat()})["dag_run_id"],
        timeout=300,
    )
    assert ranged["state"] == "success", api.task_states("flights_features", ranged["dag_run_id"])
    assert {day: feature_rows_digest(settings, day) for day in earlier} == before
    for r in _scheduled(api, "flights_features"):
        if r["start_date"] and r["end_date"]:
            assert r["end_date"] <= ranged["start_date"] or r["start_date"] >= ranged["end_date"], (r, ranged)

