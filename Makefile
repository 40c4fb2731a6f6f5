# kpi-monitor: the two commands of the README, and a few helpers.
#   make demo   install what is missing, start Kafka + Redis + worker + simulator, print where to look
#   make test   install what is missing, start what the tests need, run the whole suite
#   make stop   stop the demo (worker, simulator) and the local stack
#   make wall-screenshot   docs/wall.png: a headless Chromium picture of the running demo's wall
#   make bench  the benchmarks of bench/ with their defaults (about 45 min; bench/RESULTS.md)
#   make docs   rewrite the KPI tables of README.md and docs/kpis.md from the catalogue
#   make soak   10 minutes of steady load with a kill -9 every 2 minutes, then the oracle's verdict

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
KPI := $(VENV)/bin/kpi-monitor
PYTEST_ARGS ?=

BENCH_ARGS ?=

.PHONY: demo test stop install status clean docs soak wall-screenshot bench bench-throughput bench-latency bench-alerts bench-memory

$(VENV)/.installed: pyproject.toml
	@command -v python3 >/dev/null || { echo "python3 (>= 3.11) is required" >&2; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

# The benchmarks need py-spy (the `bench` extra) for --profile.
$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $@

demo: install
	@bash deploy/demo.sh up

stop:
	@bash deploy/demo.sh down

# Needs `make demo` running (and its backfill caught up); installs Debian's chromium when missing.
wall-screenshot: install
	$(PY) -m stream.local.browser screenshot --url http://127.0.0.1:$${KPI_WEB_PORT:-6066}/wall --out docs/wall.png

status: install
	@$(KPI) stack status || true
	@bash deploy/demo.sh status

test: install
	$(KPI) stack up
	$(PY) -m pytest $(PYTEST_ARGS)

docs: install
	$(PY) -m stream.kpi.reference

soak: install
	$(KPI) stack up
	$(PY) -m tests.soak $(SOAK_ARGS)

bench-throughput bench-latency bench-alerts bench-memory: $(VENV)/.bench-installed
	$(KPI) stack up
	$(PY) -m bench.$(subst alerts,alert_latency,$(patsubst bench-%,%,$@)) $(BENCH_ARGS)

bench: $(VENV)/.bench-installed
	$(KPI) stack up
	$(PY) -m bench.throughput
	$(PY) -m bench.latency
	$(PY) -m bench.alert_latency
	$(PY) -m bench.memory

clean: stop
	rm -rf $(VENV) .stack
