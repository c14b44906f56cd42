"""Do two engines' features agree row for row? Keys matched, every shared column compared.

Floats agree when ``|a - b| <= rtol * max(|a|, |b|)`` (rtol 1e-9), nulls only with nulls; other
columns exactly. Each mismatch is reported with its flight key and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flywheel import features

if TYPE_CHECKING:
    import pandas as pd

RTOL = 1e-9
KEY = list(features.KEY_COLUMNS)


@dataclass
class Comparison:
    """What differs between a reference output and another engine's."""

    name: str
    rows: int
    columns: list[str]
    only_in_reference: int = 0
    only_in_other: int = 0
    missing_columns: list[str] = field(default_factory=list)
    mismatches: dict[str, int] = field(default_factory=dict)  # column -> rows that differ
    examples: list[str] = field(default_factory=list)  # "key column: reference vs other"

    @property
    def ok(self) -> bool:
        return not (self.only_in_reference or self.only_in_other or self.missing_columns or self.mismatches)

    def summary(self) -> str:
        if self.ok:
            return f"{self.name}: {self.rows:,} rows x {len(self.columns)} columns agree (floats within {RTOL:g} relative)"
        lines = [
            f"{self.name}: DIFFERS: {self.only_in_reference} keys only in the reference, {self.only_in_other} only here, "
            f"missing columns {self.missing_columns or '-'}, mismatching rows per column {self.mismatches or '-'}"
        ]
        return "\n".join(lines + [f"  {e}" for e in self.examples])


def read_output(path: Path) -> pd.DataFrame:
    """An engine's Parquet output (a file or a folder of parts) with plain types: strings as objects,
    every number as float64 with NaN for null."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    arrays = []
    for column in table.columns:
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_integer(column.type) or pa.types.is_boolean(column.type):
            column = column.cast(pa.float64())
        if pa.types.is_large_string(column.type):
            column = column.cast(pa.string())
        arrays.append(column)
    return pa.table(arrays, names=table.column_names).to_pandas()


def compare(reference: pd.DataFrame, other: pd.DataFrame, name: str, limit: int = 20) -> Comparison:
    """Match ``other`` to ``reference`` on the flight key and compare every column of the reference."""
    import numpy as np

    result = Comparison(name, len(reference), list(reference.columns))
    result.missing_columns = [c for c in reference.columns if c not in other.columns]
    for frame, label in ((reference, "reference"), (other, name)):
        dupes = int(frame.duplicated(KEY).sum())
        if dupes:
            raise ValueError(f"{label}: {dupes} rows repeat a key {KEY}; the outputs cannot be matched row for row")
    merged = reference.merge(other, on=KEY, how="outer", suffixes=("", "__other"), indicator=True)
    result.only_in_reference = int((merged["_merge"] == "left_only").sum())
    result.only_in_other = int((merged["_merge"] == "right_only").sum())
    both = merged[merged["_merge"] == "both"]
    for column in reference.columns:
        if column in KEY or column in result.missing_columns:
            continue
        a, b = both[column], both[f"{column}__other"]
        if a.dtype.kind == "f" and b.dtype.kind == "f":
            x, y = a.to_numpy(), b.to_numpy()
            same = (np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= RTOL * np.maximum(np.abs(x), np.abs(y)))
        else:
            same = ((a == b) | (a.isna() & b.isna())).to_numpy()
        bad = np.flatnonzero(~same)
        if bad.size:
            result.mismatches[column] = int(bad.size)
            for i in bad[: max(0, limit - len(result.examples))]:
                row = both.iloc[i]
                key = ", ".join(f"{k}={row[k]}" for k in KEY)
                result.examples.append(f"{key} {column}: reference {row[column]!r} vs {name} {row[f'{column}__other']!r}")
    return result
