"""Which days a run of a daily DAG works on, and how a range run carries its failures (pure logic)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from airflow.sdk.exceptions import AirflowFailException

from flywheel.orchestration.days import RangeParamsError, finish, outcome, range_params, run_days

# A run's logical date as Airflow gives it: midnight UTC of the interval that just ended.
JAN_5 = dt.datetime(2013, 1, 5, tzinfo=dt.UTC)


def test_a_run_works_on_its_logical_date_unless_it_has_a_range() -> None:
    assert run_days(JAN_5, {"from_ds": None, "to_ds": None}) == ["2013-01-05"]
    assert run_days(JAN_5, None) == ["2013-01-05"]
    assert run_days(None, {"from_ds": "2013-01-30", "to_ds": "2013-02-02"}) == [
        "2013-01-30",
        "2013-01-31",
        "2013-02-01",
        "2013-02-02",
    ]
    # The Params win over the logical date; to_ds defaults to from_ds.
    assert run_days(JAN_5, {"from_ds": "2013-03-01", "to_ds": None}) == ["2013-03-01"]


@pytest.mark.parametrize(
    ("logical_date", "params", "message"),
    [
        (None, {}, r"no logical date and no from_ds/to_ds"),
        (None, {"to_ds": "2013-01-02"}, r"to_ds=2013-01-02 without from_ds"),
        (None, {"from_ds": "2013-01-05", "to_ds": "2013-01-02"}, r"2013-01-05\.\.2013-01-02 ends before it starts"),
        (None, {"from_ds": "2013-13-01"}, r"'2013-13-01' is not YYYY-MM-DD"),
    ],
)
def test_a_bad_range_is_a_clear_failure(logical_date: dt.datetime | None, params: dict[str, str], message: str) -> None:
    with pytest.raises(AirflowFailException, match=message):
        run_days(logical_date, params)


def test_failures_travel_with_the_days_and_fail_the_last_task() -> None:
    landed = outcome("land", ["2013-01-02", "2013-01-01"], {"2013-01-03": "no flights file"})
    assert landed == {"days": ["2013-01-01", "2013-01-02"], "failed": {"2013-01-03": "no flights file"}}
    gated = outcome("validate_landing", ["2013-01-01"], {"2013-01-02": "gate failed"}, landed["failed"])
    assert gated["failed"] == {"2013-01-02": "gate failed", "2013-01-03": "no flights file"}
    with pytest.raises(AirflowFailException, match=r"1 day\(s\) done \(2013-01-01\); 2 failed") as err:
        finish("flights_features", gated)
    assert "ds=2013-01-03: no flights file" in str(err.value)
    finish("flights_features", {"days": ["2013-01-01"], "failed": {}})  # nothing failed: nothing raised


def test_a_task_with_no_day_left_fails_with_every_reason() -> None:
    with pytest.raises(AirflowFailException, match=r"validate_landing: no day left[\s\S]*ds=2013-01-01: gate failed"):
        outcome("validate_landing", [], {"2013-01-01": "gate failed"})


def test_the_range_params_are_optional_dates() -> None:
    params = range_params()
    assert set(params) == {"from_ds", "to_ds"}
    assert all(p.value is None and p.schema["format"] == "date" for p in params.values())


def test_a_sensor_fails_a_day_whose_landing_or_features_gate_quarantined_it(tmp_path, monkeypatch) -> None:
    """The features gate quarantines only the candidate (the landing stays valid): scoring's sensor
    must still see that day as failed, not wait for features that will not come."""
    import pandas as pd

    from flywheel import catalog, lake
    from flywheel.orchestration.days import poke_upstream

    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    monkeypatch.delenv("FLYWHEEL_LAKE", raising=False)
    frame = pd.DataFrame({"a": [1]})
    lake.write_frame(frame, "features", "flights", "2013-01-01")
    lake.write_frame(frame, "quarantine", "flights", "2013-01-02")  # landing gate failed
    lake.write_frame(frame, "landing", "flights", "2013-01-03")
    lake.write_frame(frame, "quarantine", "features", "2013-01-03")  # features gate failed
    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    result = poke_upstream("wait_for_features", days, catalog.FEATURES, "fix it").xcom_value
    assert result["days"] == ["2013-01-01"]
    assert sorted(result["failed"]) == ["2013-01-02", "2013-01-03"]
    assert "quarantine/features/ds=2013-01-03" in result["failed"]["2013-01-03"]
    assert poke_upstream("wait_for_features", ["2013-01-04"], catalog.FEATURES, "fix it").is_done is False


# --- partition keys: the days of an asset-triggered run ------------------------------------------


def test_a_partition_key_is_a_day_or_a_range_of_consecutive_days() -> None:
    from flywheel import partition_keys as pk

    assert pk.key_of(["2013-01-05"]) == "2013-01-05"
    assert pk.key_of(["2013-01-31", "2013-01-30", "2013-02-01"]) == "2013-01-30..2013-02-01"
    with pytest.raises(pk.PartitionKeyError, match="not consecutive"):
        pk.key_of(["2013-01-01", "2013-01-03"])
    # A range run that quarantined a day in the middle: one key per run of consecutive days.
    assert pk.keys_of(["2013-01-04", "2013-01-01", "2013-01-02", "2013-01-05"]) == ["2013-01-01..2013-01-02", "2013-01-04..2013-01-05"]
    assert pk.keys_of([]) == []
    for key in ("2013-01-05", "2013-12-30..2014-01-02"):
        assert pk.key_of(pk.days_of(key)) == key
    assert pk.days_of("2013-12-30..2014-01-02") == ["2013-12-30", "2013-12-31", "2014-01-01", "2014-01-02"]


@pytest.mark.parametrize("key", ["2013-02-31", "yesterday", "2013-01-05..", "2013-01-05..2013-01-01", "2013-01-01...2013-01-02"])
def test_a_malformed_partition_key_names_itself(key) -> None:
    from flywheel import partition_keys as pk

    with pytest.raises(pk.PartitionKeyError, match=re.escape(repr(key))):
        pk.days_of(key)
    with pytest.raises(RangeParamsError, match="partition key"):
        run_days(None, None, key)


def test_the_partition_key_comes_first_then_the_params_then_the_logical_date() -> None:
    assert run_days(None, None, "2013-01-30..2013-02-01") == ["2013-01-30", "2013-01-31", "2013-02-01"]
    assert run_days(JAN_5, {"from_ds": "2013-03-01", "to_ds": None}, "2013-01-07") == ["2013-01-07"]
    with pytest.raises(RangeParamsError, match="more than 731"):
        run_days(None, None, "2013-01-01..2015-01-05")
    with pytest.raises(RangeParamsError, match="no partition key, no logical date"):
        run_days(None, None, None)
