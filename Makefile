# Two commands on a fresh machine: `make demo` and `make test`. Everything else is a convenience.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
VENV := .venv
PY := $(VENV)/bin/python
HOME_DIR := $(CURDIR)/.ml_platform
export DAGSTER_HOME := $(HOME_DIR)/dagster
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true

.PHONY: help env test stress mutants demo demo-reproduce ui bench lint clean

help:
	@echo "make demo   create the environment and run the whole lifecycle on the embedded default"
	@echo "make test   create the environment and run every test (PostgreSQL ones included) but the stress ones"
	@echo "make stress the stress tests (random crash trials, full-size storms: ML_PLATFORM_CRASH_SEED), then make test"
	@echo "make mutants mutation testing of the safety-critical modules: kill rate per module, fails below 90%"
	@echo "make demo-reproduce  train at commit A of a copy, move code, data and lock to B, reproduce A bit-exactly"
	@echo "make ui     open the Dagster UI (dagster dev) on the embedded default"
	@echo "make bench  run the benchmarks, print the table, write benchmarks/results.json"

# The environment is created from uv.lock exactly (--frozen): pinning is the product's own promise.
$(VENV)/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen
	@touch $@

env: $(VENV)/.synced

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

lint: env
	$(VENV)/bin/lint-imports

# Two pytest processes share the 2 cores: the tests marked `daemon` mostly wait on an isolated Dagster
# daemon's loop, so a few heavy tests marked `beside` run in their process too, and the two take about the
# same time. Their output follows the rest; `make test` fails if either fails.
# Tests marked `stress` (random crash trials, full-size storms) are left to `make stress`: every -m of
# `make test` ends with `and $(NOT_STRESS)`.
SECOND_LANE = daemon or beside
NOT_STRESS = not stress
test: env lint
	@mkdir -p $(HOME_DIR); $(PY) -m pytest -m "($(SECOND_LANE)) and $(NOT_STRESS)" -p no:cacheprovider --basetemp=$(HOME_DIR)/daemon-tests > $(HOME_DIR)/daemon-tests.log 2>&1 & \
	daemon=$$!; $(PY) -m pytest -m "not ($(SECOND_LANE)) and $(NOT_STRESS)"; rest=$$?; wait $$daemon; late=$$?; \
	echo "== tests marked daemon or beside (run in a second process beside the others)"; cat $(HOME_DIR)/daemon-tests.log; \
	exit $$(( rest != 0 ? rest : late ))

# The stress tests, then everything `make test` runs; fails if either fails. Their random trials print their
# seed: ML_PLATFORM_CRASH_SEED=<seed> make stress replays them.
stress: env lint
	@$(PY) -m pytest -m stress -p no:cacheprovider; stress=$$?; $(MAKE) --no-print-directory test; rest=$$?; \
	exit $$(( stress != 0 ? stress : rest ))

# Mutation testing ([tool.mutmut] in pyproject.toml: the modules, their fast tests): mutmut plants one change at a
# time in a copy of the library (mutants/) and runs the tests that reach it; the report prints the share of changes
# some test caught, per module and in total, and fails below 90%. Always from scratch: mutmut's cache would keep
# the verdict of a mutant whose tests changed since. Its progress goes to .ml_platform/mutants.log. The plugin
# (ml_platform_tests/harness/mutation.py) spares each mutant's tests MLflow's schema migrations.
mutants: env
	@mkdir -p $(HOME_DIR); rm -rf mutants; start=$$(date +%s); \
	PYTEST_PLUGINS=ml_platform_tests.harness.mutation $(VENV)/bin/mutmut run --max-children 2 > $(HOME_DIR)/mutants.log 2>&1 \
	  || { tail -n 30 $(HOME_DIR)/mutants.log; echo "mutmut failed: $(HOME_DIR)/mutants.log"; exit 1; }; \
	echo "mutmut ran in $$(( $$(date +%s) - start )) s"; $(PY) tools/mutation_report.py

demo: env $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/quant-alpha demo

demo-reproduce: env
	$(VENV)/bin/quant-alpha demo-reproduce

ui: env $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -w workspace.yaml

bench: env
	$(PY) benchmarks/run.py

clean:
	rm -rf $(HOME_DIR)
