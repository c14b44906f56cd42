"""The e2e tier's story: its days, settings and the injected drift (shared by conftest.py and the tests)."""

from __future__ import annotations

import datetime as dt

from flywheel import catalog, config, features

DAYS = [dt.date(2013, 1, 1) + dt.timedelta(days=i) for i in range(10)]
CHAMPION_AS_OF = DAYS[7]
CLEAN_DAY, DRIFT_DAY = DAYS[8], DAYS[9]
AIRFLOW_PORT = 18080

# Settings of the whole run (this process and the stack): small windows, one trial; the policy
# calls drift on data drift alone (quality and prediction drift switched off) after a single day.
ENV = {
    "FLYWHEEL_HOLDOUT_DAYS": "2",
    "FLYWHEEL_TRAIN_WINDOW_DAYS": "10",
    "FLYWHEEL_TUNING_TRIALS": "1",
    "FLYWHEEL_DRIFT_SHARE": "0.8",
    "FLYWHEEL_DRIFT_CONSECUTIVE_DAYS": "1",
    "FLYWHEEL_QUALITY_DROP": "0.99",
    "FLYWHEEL_PREDICTION_DRIFT": "1000",
    "FLYWHEEL_RETRAIN_COOLDOWN_DAYS": "1",
    # The MLflow UI of the stack (the browser tests open a run through the plugin's proxy).
    "FLYWHEEL_MLFLOW_PORT": "18500",
}


def inject_drift(day: dt.date, settings: config.Settings) -> None:
    """Move almost every model input to where training never saw it, within the valid ranges
    (the training-set gate rightly refuses out-of-range values, and the retraining trains on this day)."""
    import numpy as np

    frame = catalog.FEATURES.read_frame(day, settings.lake)
    manifest = features.read_manifest(catalog.FEATURES.path(day, settings.lake))

    def f(col: str):
        return frame[col].astype("float64")

    frame["dep_hour"] = (frame["dep_hour"] + 12) % 24
    frame["sched_dep_minutes"] = (frame["sched_dep_minutes"] + 720) % 1440
    frame["sched_arr_minutes"] = (frame["sched_arr_minutes"] + 720) % 1440
    frame["distance"] = np.minimum(f("distance") * 2, 5900)
    for col, value in {"temp": f("temp") + 45, "dewp": f("dewp") + 45, "humid": 100 - f("humid"),
                       "wind_dir": (f("wind_dir") + 180) % 360, "wind_speed": f("wind_speed") * 3,
                       "wind_gust": f("wind_gust") * 3, "precip": f("precip") + 0.5,
                       "pressure": f("pressure") + 30, "visib": 10 - f("visib"),
                       "plane_age": np.minimum(f("plane_age") + 30, 79), "plane_seats": f("plane_seats") * 2,
                       "plane_engines": f("plane_engines") + 2, "dest_lat": f("dest_lat") + 15,
                       "dest_lon": f("dest_lon") + 30, "dest_alt": f("dest_alt") + 3000, "dest_tz": f("dest_tz") + 3}.items():
        frame[col] = value.astype(frame[col].dtype) if frame[col].dtype.kind in "iu" else value
    for col in features.HISTORY_FEATURES:
        if "_delay_rate_" in col:
            frame[col] = 1 - f(col)
        elif "_mean_arr_delay_" in col:
            frame[col] = f(col) + 90
        else:
            frame[col] = frame[col] * 5 + 50
    catalog.FEATURES.write_frame(frame, day, settings.lake, extra_files={features.MANIFEST: manifest})
