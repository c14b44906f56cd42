"""The features contract: the columns of ``features/flights/ds=D/`` and what each may hold.

The Spark job (``spark_jobs/build_features.py``) produces exactly these columns, the features
gate checks them, and training reads them. One row per landed flight with a known outcome:
cancelled flights (no ``dep_time``) and diverted flights (departed, no ``arr_delay``) have no
label and are excluded; the partition's ``_manifest.json`` counts them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flywheel import schema

MANIFEST = "_manifest.json"

HISTORY_ENTITIES = ("carrier", "origin", "route", "tailnum")
HISTORY_WINDOWS = (7, 28)

KEY_COLUMNS = ("ds", "carrier", "flight", "origin")
ID_COLUMNS = ("ds", "year", "month", "day", "carrier", "flight", "tailnum", "origin", "dest", "route")
LABEL_COLUMNS = ("arr_delay", schema.LABEL)
CALENDAR_FEATURES = ("dep_hour", "sched_dep_minutes", "sched_arr_minutes", "day_of_week", "day_of_year", "is_weekend")
FLIGHT_FEATURES = ("distance",)
WEATHER_FEATURES = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib")
PLANE_FEATURES = ("plane_age", "plane_seats", "plane_engines")
AIRPORT_FEATURES = ("dest_lat", "dest_lon", "dest_alt", "dest_tz")


def history_columns() -> tuple[str, ...]:
    cols: list[str] = []
    for entity in HISTORY_ENTITIES:
        for window in HISTORY_WINDOWS:
            cols += [
                f"{entity}_flights_{window}d",
                f"{entity}_delay_rate_{window}d",
                f"{entity}_mean_arr_delay_{window}d",
            ]
    return tuple(cols)


HISTORY_FEATURES = history_columns()

# Model inputs: categorical ones are strings, the rest numeric (nullable where noted below).
CATEGORICAL_FEATURES = ("carrier", "origin", "dest")
NUMERIC_FEATURES = (
    CALENDAR_FEATURES + FLIGHT_FEATURES + WEATHER_FEATURES + PLANE_FEATURES + AIRPORT_FEATURES + HISTORY_FEATURES
)
COLUMNS = ID_COLUMNS + LABEL_COLUMNS + NUMERIC_FEATURES

# Never null in a published partition.
REQUIRED_NON_NULL = (
    KEY_COLUMNS
    + ("year", "month", "day", "dest", "route")
    + LABEL_COLUMNS
    + CALENDAR_FEATURES
    + FLIGHT_FEATURES
    + tuple(c for c in HISTORY_FEATURES if "_flights_" in c)
)
# May be null, and why: weather has gaps in some hours; planes lacks some tail numbers (and a
# flight may have no tailnum); four destinations lack airport facts; a rate or mean is null
# when its entity had no labelled flight in the window (the matching *_flights_* count is 0).
NULLABLE = ("tailnum",) + WEATHER_FEATURES + PLANE_FEATURES + AIRPORT_FEATURES + tuple(
    c for c in HISTORY_FEATURES if "_flights_" not in c
)

# Inclusive ranges the features gate enforces (nulls aside).
RANGES: dict[str, tuple[float, float]] = {
    "dep_hour": (0, 23),
    "sched_dep_minutes": (0, 1439),
    "sched_arr_minutes": (0, 1439),
    "day_of_week": (1, 7),
    "day_of_year": (1, 366),
    "is_weekend": (0, 1),
    schema.LABEL: (0, 1),
    "distance": (1, 6000),
    "plane_age": (0, 80),
    "temp": (-40, 130),
    "humid": (0, 100),
    "wind_speed": (0, 150),
    "visib": (0, 10),
    **{c: (0, 1) for c in HISTORY_FEATURES if "_delay_rate_" in c},
}


def read_manifest(partition: Path) -> dict[str, Any]:
    """The ``_manifest.json`` the Spark job writes beside a features partition."""
    path = partition / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the features partition was not written by build_features")
    return json.loads(path.read_text())


# --- lineage: which landed versions a features partition was built from --------------------------


def landing_versions(days: Any, lake_root: Path) -> dict[Any, str | None]:
    """The current version of each day's landing partition (``None``: not landed)."""
    from flywheel import catalog

    return {d: catalog.LANDING_FLIGHTS.version(d, lake_root) for d in days}


def pinned(path: Path, version: str | None) -> Path:
    """``.../ds=D/rest`` as the path inside version ``version`` of that partition (unchanged for an
    unversioned or unknown partition): a reader of the pinned path keeps reading that version
    even if the pointer is swapped meanwhile."""
    from flywheel import lake

    if version in (None, "unversioned"):
        return path
    parts = path.parts
    at = next(i for i, part in enumerate(parts) if part.startswith("ds="))
    return Path(*parts[:at], lake.VERSIONS, parts[at], version, *parts[at + 1 :])


def changed_inputs(inputs: dict[Any, str | None], lake_root: Path) -> list[str]:
    """Inputs whose landing version is no longer the recorded one, as ``ds=D: old -> new``."""
    now = landing_versions(list(inputs), lake_root)
    return [f"ds={d}: {v} -> {now[d] or 'gone'}" for d, v in inputs.items() if now[d] != v]


def stale_partitions(days: Any, lake_root: Path) -> dict[str, list[str]]:
    """Published features partitions built from another version of the landing of one of ``days``
    than the current one: ``{features day: ["ds=D: old -> new", ...]}``. A rerun of a day's
    landing makes the features of the following days (whose history windows read it) stale until
    they are rebuilt; this finds them from the manifests' ``inputs``."""
    import datetime as dt

    from flywheel import catalog, lake

    changed = {lake.parse_ds(d) for d in days}
    if not changed:
        return {}
    window = dt.timedelta(days=max(HISTORY_WINDOWS))
    stale: dict[str, list[str]] = {}
    for day in catalog.FEATURES.list_partitions(lake_root):
        if not any(c <= day <= c + window for c in changed):
            continue
        try:
            inputs = read_manifest(catalog.FEATURES.path(day, lake_root)).get("inputs")
        except (OSError, ValueError):
            continue
        if not inputs:  # built before lineage was recorded: nothing to compare
            continue
        relevant = {lake.parse_ds(d): v for d, v in inputs.items() if lake.parse_ds(d) in changed}
        diffs = changed_inputs(relevant, lake_root)
        if diffs:
            stale[day.isoformat()] = diffs
    return stale
