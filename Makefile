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
# Every `uv sync` compiles the environment's bytecode: ours here, and those the tests build (a reproduction's,
# a scaffolded project's), which inherit it. Where PYTHONDONTWRITEBYTECODE is set, nothing else would, and each
# Python process (a pytest worker, a Dagster webserver, daemon, code server or run worker) would compile
# dagster, mlflow and the rest from source again: about 4 s of CPU each, against about 20 s once per environment.
export UV_COMPILE_BYTECODE := 1

.PHONY: help env system-deps test test-quick stress mutants demo demo-reproduce ui bench lint clean prod-local \
	prod-local-stop

help:
	@echo "make demo   create the environment and run the whole lifecycle on the embedded default"
	@echo "make test   create the environment and run every test (PostgreSQL ones included) but the stress ones"
	@echo "make test-quick  the inner loop: pure and component tests, no daemon, no end-to-end lifecycle (minutes)"
	@echo "make stress the stress tests (random crash trials, full-size storms: ML_PLATFORM_CRASH_SEED), then make test"
	@echo "make mutants mutation testing of the safety-critical modules: kill rate per module, fails below 90%"
	@echo "make demo-reproduce  train at commit A of a copy, move code, data and lock to B, reproduce A bit-exactly"
	@echo "make ui     open the Dagster UI (dagster dev) on the embedded default"
	@echo "make bench  run the benchmarks, print the table, write benchmarks/results.json"
	@echo "make prod-local  start the production stack on this machine (PostgreSQL, S3, Redis, MLflow, Dagster, Celery)"
	@echo "make prod-local-stop  stop exactly the processes make prod-local started; no port left listening"

# The environment is created from uv.lock exactly (--frozen): pinning is the product's own promise.
$(VENV)/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen
	@touch $@

env: $(VENV)/.synced

# The machine's packages the production-stack tests start or drive: Redis (the Celery broker) and Chromium
# (the headless browser Playwright drives; Playwright's own browser download is blocked here). PostgreSQL 15
# comes with the machine. Installed with apt-get where missing (as root, or through sudo); the package lists
# are refreshed only when the first attempt fails.
SYSTEM_BINARIES := /usr/bin/redis-server /usr/bin/chromium
SYSTEM_PACKAGES := redis-server chromium
system-deps:
	@missing=""; for b in $(SYSTEM_BINARIES); do [ -x "$$b" ] || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing $(SYSTEM_PACKAGES) (missing:$$missing)"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null \
	    || { $$sudo apt-get update -q >/dev/null && $$sudo apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null; } \
	    || { echo "could not install $(SYSTEM_PACKAGES) with apt-get: install them by hand"; exit 1; }; \
	fi

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

lint: env
	$(VENV)/bin/lint-imports

# One pytest with pytest-xdist: TEST_WORKERS workers on the 2 cores, --dist loadgroup. conftest.py (at the root)
# makes each test module one work unit and starts the longest units first; the modules that go on from one
# lifecycle built once per session (ml_platform_tests/lifecycles, quant_alpha_tests/example_features.py) name
# one xdist_group, so it is built once. More workers than cores pays: the heavy tests mostly wait on Dagster
# daemons, webservers, run workers and subprocesses rather than on the CPU. xdist reports every failure at the
# end; `make test` fails if any test fails. Measured on the 2-core machine, fresh clones, CI=true make test,
# other engineers' tests running too: the two hand-balanced pytest processes this replaced took 38 min (lanes
# 35 and 38 min, 1139 s of CPU); this, with the shared lifecycles and compiled bytecode, 14 min (963 s of CPU).
# Idle machine, empty uv cache, 1,593 tests: 10 min 18 s. With the production-stack tests (one stack, one lane, the
# long tail), warm uv cache: 1,932 tests in 20 min 8 s: over the 15-minute target.
# Tests marked `stress` (random crash trials, full-size storms) are left to `make stress` (-m "$(NOT_STRESS)").
TEST_WORKERS ?= 4
XDIST = -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder
NOT_STRESS = not stress
test: env system-deps lint
	$(PY) -m pytest $(XDIST) -p no:cacheprovider -m "$(NOT_STRESS)"

# The inner loop: pure and component tests (PostgreSQL ones included); no end-to-end lifecycle (`slow`), no
# Dagster daemon (`daemon`), none of the heavy ones (`beside`), no kill-at-every-crash-point matrix
# (`crash_matrix`), no `stress`.
QUICK = not (slow or daemon or beside or crash_matrix or stress)
test-quick: env system-deps
	$(PY) -m pytest $(XDIST) -p no:cacheprovider -m "$(QUICK)"

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

# The production stack on this machine, from deployments/production (its README): every service its own process
# on a free loopback port, state, logs and each process's home under $(HOME_DIR)/prod-local.
PROD_LOCAL = cd deployments/production && $(CURDIR)/$(PY) -m prod_local
prod-local: env
	$(PROD_LOCAL) start

prod-local-stop: env
	$(PROD_LOCAL) stop

clean:
	rm -rf $(HOME_DIR)
