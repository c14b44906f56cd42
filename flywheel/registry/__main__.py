"""``python -m flywheel.registry``: roll the champion back, or print the promotion history.

python -m flywheel.registry rollback --to-version 3 --reason "v5 mis-scores EWR evenings"
python -m flywheel.registry history [--json]
python -m flywheel.registry champion
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from flywheel import config, lake
from flywheel.registry.history import current_champion, history_path, read_history
from flywheel.registry.promotion import rollback

COLUMNS = ("ts", "as_of", "version", "decision", "source", "before", "after", "primary", "reason")


def _num(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}"


def _row(record: dict[str, Any]) -> tuple[str, ...]:
    def v(x: Any) -> str:
        return "-" if x is None else f"v{x}"

    primary = "-"
    if record.get("challenger_primary") is not None:
        primary = f"{_num(record['challenger_primary'])} vs {_num(record.get('champion_primary'))}"
    return (
        str(record.get("ts", "-")),
        str(record.get("as_of") or "-"),
        v(record.get("version")),
        str(record.get("decision", "-")),
        str(record.get("source", "-")),
        v(record.get("champion_before")),
        v(record.get("champion_after")),
        primary,
        str(record.get("reason", "")),
    )


def format_table(records: list[dict[str, Any]]) -> str:
    """The history as a fixed-width table, oldest first (the reason column is not padded)."""
    rows = [COLUMNS, *(_row(r) for r in records)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)), r[-1]]) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.registry", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rb = sub.add_parser("rollback", help="point the champion alias at an earlier version")
    rb.add_argument("--to-version", required=True, type=int)
    rb.add_argument("--reason", required=True, help="why; recorded in the history and on the version")
    rb.add_argument(
        "--as-of",
        type=lake.parse_ds,
        default=None,
        help="the data day to record, YYYY-MM-DD (default: the latest day monitored or decided); "
        "the retraining cooldown starts there",
    )
    hist = sub.add_parser("history", help="print the promotion history")
    hist.add_argument("--json", action="store_true", help="one JSON record per line instead of a table")
    sub.add_parser("champion", help="print the champion's version")
    args = parser.parse_args(argv)
    settings = config.load()

    if args.command == "rollback":
        context = {"source": "rollback", "as_of": args.as_of.isoformat() if args.as_of else None, "by": "cli"}
        record = rollback(args.to_version, settings, args.reason, context)
        before = record["champion_before"]
        print(
            f"champion of {record['model']}: {'none' if before is None else f'v{before}'} -> v{record['champion_after']}"
        )
    elif args.command == "history":
        records = read_history(settings)
        if args.json:
            for record in records:
                print(json.dumps(record, sort_keys=True, default=str))
        elif not records:
            print(f"no promotion decisions yet ({history_path(settings)} does not exist)")
        else:
            print(format_table(records))
    else:
        version = current_champion(settings)
        print(f"v{version}" if version is not None else "no champion yet: run flights_training first")
    return 0


if __name__ == "__main__":
    sys.exit(main())
