# s3br: the two commands of the README, and the set-up they share.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint setup bench e2e-cluster dist

demo: setup  ## Backup then restore against an embedded moto S3 server and SQLite Airflow.
	$(BIN)/python scripts/demo.py

.PHONY: ui
ui: setup  ## Serve the demo's Airflow (after make demo): runs, task logs, the Backups view; Ctrl-C stops it.
	$(BIN)/python scripts/ui.py

test: setup  ## The whole test suite (unit, integration against moto, whole DAG runs).
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup  ## s3br against raw boto3, s5cmd, aws s3 sync and rclone (results in bench/results/)
	$(BIN)/uv pip install -q --compile-bytecode -p $(BIN)/python -e ".[dev,bench]"
	bash bench/setup_tools.sh
	$(BIN)/python bench/run.py --sizes $(or $(SIZES),1000,10000) --endpoint $(or $(ENDPOINT),moto)

e2e-cluster: setup  ## Backup and restore on a real cluster (Celery, PostgreSQL, Redis), then the UI in Chromium.
	$(BIN)/uv pip install -q --compile-bytecode -p $(BIN)/python -e ".[dev,cluster]"
	scripts/e2e-cluster

dist: setup  ## The wheel and the sdist of airflow-provider-s3br, in dist/.
	rm -rf dist
	$(BIN)/uv build --out-dir dist

setup: $(BIN)/airflow

$(BIN)/airflow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --compile-bytecode -p $(BIN)/python -e ".[dev]"
	touch $@
