"""Scale: Flywheel's Spark features job against pandas and DuckDB on 1x, 10x, 30x the 2013 flights.

    python bench/scale.py [--sizes 1,10,30] [--engines spark,pandas,duckdb] [--check]
                          [--data DIR] [--scratch DIR] [--json FILE] [--driver-memory 8g]

For each size (``bench/scale_data.py``, cached under ``--data``) and engine
(``bench/scale_engines.py``), one child process computes the features of the whole year in one job
and writes Parquet under ``--scratch``. Measured per run: the child's wall time (interpreter, imports,
for Spark the JVM and session start, the job), the job's own time inside it, rows per second of the
job, and the peak RSS of the child's whole process tree (Spark's JVM is a child of the Python
driver), the sum of the tree's RSS sampled every 0.2 s. ``--check`` compares pandas and DuckDB with
Spark row for row on the 1x outputs (all columns, floats within 1e-9 relative). Prints a markdown
table with the machine and its load, and writes the results as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
for _p in (str(REPO), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import scale_data  # noqa: E402
from scale_engines import ENGINES  # noqa: E402

from flywheel import config  # noqa: E402

SAMPLE_SECONDS = 0.2


def load() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` shows them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, Any]:
    import psutil

    return {
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# --- the child: one engine, one size --------------------------------------------------------------


def spark_session(home: Path, driver_memory: str, master: str) -> Any:
    """A local session with Flywheel's local configuration (``spark_jobs.session.local_conf``),
    scratch under ``home``, and a larger driver (the 30x job's shuffles and per-day plane copies)."""
    from pyspark.sql import SparkSession

    from spark_jobs.session import local_conf

    settings = dataclasses.replace(config.load(), home=home, lake=home / "lake")
    conf = {**local_conf(settings), "spark.driver.memory": driver_memory}
    for key in ("spark.sql.warehouse.dir", "spark.local.dir"):
        os.makedirs(conf[key], exist_ok=True)
    config.env_setdefault(PYSPARK_PYTHON=sys.executable)
    builder = SparkSession.builder.appName("flywheel-bench-scale").master(master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def run_engine(engine: str, inputs: Path, out: Path, driver_memory: str, master: str) -> dict[str, Any]:
    """Run ``engine`` on ``inputs`` in this process; returns rows, job seconds and setup seconds."""
    import scale_engines

    started = time.perf_counter()
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    if engine == "spark":
        spark = spark_session(out.parent / "spark_home", driver_memory, master)
        setup = time.perf_counter() - started
        try:
            result = scale_engines.spark_features(spark, inputs, out)
        finally:
            spark.stop()
    elif engine == "pandas":
        import numpy  # noqa: F401  (imports are setup, not the job)
        import pandas  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        setup = time.perf_counter() - started
        result = scale_engines.pandas_features(inputs, out)
    elif engine == "duckdb":
        import duckdb  # noqa: F401

        setup = time.perf_counter() - started
        result = scale_engines.duckdb_features(inputs, out)
    else:
        raise ValueError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {**result, "setup_seconds": setup, "self_max_rss_bytes": self_rss}


# --- the parent: children, measured ---------------------------------------------------------------


def measure(engine: str, inputs: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one engine in a child process; wall time and peak RSS of its process tree."""
    import psutil

    result_file = out.parent / f"{engine}.result.json"
    result_file.unlink(missing_ok=True)
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--child", engine, "--child-input", str(inputs),
        "--child-output", str(out), "--child-result", str(result_file),
        "--driver-memory", args.driver_memory, "--master", args.master,
    ]  # fmt: skip
    load_before = load()
    started = time.perf_counter()
    child = psutil.Popen(cmd, env=config.child_env(PYTHONPATH=os.pathsep.join([str(REPO), str(BENCH)])))
    peak = 0
    while child.poll() is None:
        try:
            tree = [child, *child.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        rss = 0
        for proc in tree:
            try:
                rss += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        peak = max(peak, rss)
        time.sleep(SAMPLE_SECONDS)
    wall = time.perf_counter() - started
    if child.returncode != 0 or not result_file.is_file():
        raise RuntimeError(f"{engine} on {inputs} failed (exit {child.returncode}); its output is above")
    inner = json.loads(result_file.read_text())
    return {
        "engine": engine,
        "wall_seconds": round(wall, 2),
        "job_seconds": round(inner["seconds"], 2),
        "setup_seconds": round(inner["setup_seconds"], 2),
        "rows": inner["rows"],
        "rows_per_second_job": round(inner["rows"] / inner["seconds"]),
        "rows_per_second_wall": round(inner["rows"] / wall),
        "peak_tree_rss_gib": round(peak / 2**30, 2),
        "driver_max_rss_gib": round(inner["self_max_rss_bytes"] / 2**30, 2),
        "load_before": load_before,
        "load_after": load(),
        "output": str(out),
    }


def check(scratch: Path) -> list[str]:
    """pandas and DuckDB against Spark on the 1x outputs; one summary line (and examples) per engine."""
    from scale_check import compare, read_output

    folder = scratch / "x1"
    outputs = {e: folder / e for e in ENGINES}
    missing = [str(p) for p in outputs.values() if not p.exists()]
    if missing:
        raise SystemExit(f"--check needs the 1x outputs of every engine; missing {', '.join(missing)}")
    reference = read_output(outputs["spark"])
    results = [compare(reference, read_output(outputs[e]), f"{e} vs spark") for e in ("pandas", "duckdb")]
    return [r.summary() for r in results] + (["CHECK FAILED"] if not all(r.ok for r in results) else [])


def table(meta: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    lines = [
        f"Machine: {meta['machine']['cores']} cores, {meta['machine']['ram_gib']} GiB, Python {meta['machine']['python']}; "
        f"Spark local[2] ({meta['master']}), spark.driver.memory={meta['driver_memory']}; DuckDB threads=2; pandas 1 thread.",
        "",
        "| size | flights in | rows out | engine | wall s | job s | setup s | rows/s (job) | peak RSS GiB (tree) | load before |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['size']}x | {r['flights_in']:,} | {r['rows']:,} | {r['engine']} | {r['wall_seconds']:.1f} | "
            f"{r['job_seconds']:.1f} | {r['setup_seconds']:.1f} | {r['rows_per_second_job']:,} | "
            f"{r['peak_tree_rss_gib']:.2f} | {r['load_before']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10,30")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--check", action="store_true", help="compare pandas and DuckDB with Spark on the 1x year")
    parser.add_argument("--data", type=Path, default=scale_data.default_out(), help="scaled inputs (cache)")
    parser.add_argument("--scratch", type=Path, default=None, help="engine outputs (default: <data>/out)")
    parser.add_argument("--json", type=Path, default=None, help="results file (default: <scratch>/results.json)")
    parser.add_argument("--fresh", action="store_true", help="drop the runs an earlier invocation left in --json")
    parser.add_argument("--seed", type=int, default=scale_data.DEFAULT_SEED)
    parser.add_argument("--driver-memory", default="8g", help="spark.driver.memory of the Spark run (default 8g)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--child-input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = run_engine(args.child, args.child_input, args.child_output, args.driver_memory, args.master)
        args.child_result.write_text(json.dumps(result))
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"--engines: unknown {unknown}; expected some of {', '.join(ENGINES)}")
    if args.check and (1 not in sizes or set(engines) != set(ENGINES)):
        parser.error("--check compares the 1x outputs of all three engines: include size 1 and every engine")
    scratch = args.scratch or args.data / "out"
    results_file = args.json or scratch / "results.json"
    meta: dict[str, Any] = {"machine": machine(), "driver_memory": args.driver_memory, "master": args.master}
    print(f"machine: {meta['machine']}; load {load()}", flush=True)
    # Runs of earlier invocations stay in the results file (a size x engine measured again replaces its row),
    # so a long size can be measured on its own and still land in one table.
    previous = json.loads(results_file.read_text())["runs"] if results_file.is_file() and not args.fresh else []
    runs: list[dict[str, Any]] = []

    def merged() -> list[dict[str, Any]]:
        fresh = {(r["size"], r["engine"]) for r in runs}
        kept = [r for r in previous if (r["size"], r["engine"]) not in fresh]
        return sorted(kept + runs, key=lambda r: (r["size"], ENGINES.index(r["engine"])))

    for size in sizes:
        inputs, data = scale_data.ensure(args.data, size, args.seed)
        (scratch / f"x{size}").mkdir(parents=True, exist_ok=True)
        for engine in engines:
            run = measure(engine, inputs, scratch / f"x{size}" / engine, args)
            run.update(size=size, flights_in=data["flights"], driver_memory=args.driver_memory if engine == "spark" else None)
            runs.append(run)
            print(
                f"x{size} {engine}: wall {run['wall_seconds']} s, job {run['job_seconds']} s, {run['rows']:,} rows, "
                f"peak {run['peak_tree_rss_gib']} GiB (load {run['load_before']} -> {run['load_after']})",
                flush=True,
            )
            results_file.parent.mkdir(parents=True, exist_ok=True)
            results_file.write_text(json.dumps({**meta, "runs": merged()}, indent=2))
    lines = check(scratch) if args.check else []
    meta["check"] = lines
    results_file.write_text(json.dumps({**meta, "runs": merged()}, indent=2))
    print()
    print(table(meta, merged()))
    for line in lines:
        print(line)
    print(f"\nresults: {results_file}")
    return 1 if lines and lines[-1] == "CHECK FAILED" else 0


if __name__ == "__main__":
    sys.exit(main())
