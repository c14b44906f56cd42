# Flywheel: the whole ML loop on Airflow 3. `make` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
export FLYWHEEL_HOME ?= $(CURDIR)/.flywheel
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export GX_ANALYTICS_ENABLED := False

.PHONY: help install demo live test test-fast up down status lint bench clean java

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

java:
	@command -v java >/dev/null || { echo "error: java not found. PySpark 4 needs Java 17 (e.g. apt-get install openjdk-17-jdk-headless)." >&2; exit 1; }

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@$(PY) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version}"'
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
	@# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (CI images often do) every process would
	@# otherwise recompile Airflow, MLflow & co. on import: 2x slower starts of every task and server.
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r requirements.txt
	@touch $@

install: java $(VENV)/.installed ## Create .venv and install the pinned lock (requirements.txt)

demo: install ## Run the loop through the real scheduler (28-day backfill, training, drift, retraining) and print a summary and the login
	$(PY) -m flywheel.demo

live: install ## The loop on the replay clock: first window + champion, then the scheduler runs one 2013 day a minute by itself (FLYWHEEL_LIVE_SECONDS)
	$(PY) -m flywheel.live

test: install ## Run the whole test suite (what CI runs); prints the 30 slowest tests
	$(PY) -m pytest --durations=30

# The edit loop: pure logic and DAG integrity; no Spark, no Airflow scheduler, no browser, no real data.
FAST_MARKERS := not spark and not integration and not e2e and not cluster and not browser and not faults
test-fast: install ## Unit tests of pure logic and the DAG integrity tests, in about a minute (no Spark, scheduler or browser)
	$(PY) -m pytest -q -m "$(FAST_MARKERS)" tests/unit tests/dags

up: install ## Start the local stack (PostgreSQL, MLflow, Spark Connect, Airflow UI on 127.0.0.1:8080) and print the login; FLYWHEEL_PROFILE=cluster: Celery workers, Spark master+worker, MLflow server
	$(PY) -m flywheel.stack up

down: ## Stop everything `make up` / `make demo` started (the embedded PostgreSQL last)
	@test -x $(PY) && $(PY) -m flywheel.stack down || true

status: ## Show each component of the stack (either profile) and whether it runs
	$(PY) -m flywheel.stack status

lint: install ## ruff (with the Airflow AIR rules)
	$(VENV)/bin/ruff check .

bench: install ## Benchmarks: DAG parse time, feature job per day, the whole demo story (stop the stack first)
	$(PY) bench/dag_parse.py
	$(PY) bench/feature_job.py
	$(PY) bench/demo.py

clean: down ## Delete all run state (FLYWHEEL_HOME: lake, PostgreSQL data, logs, Data Docs, login)
	rm -rf "$(FLYWHEEL_HOME)"
