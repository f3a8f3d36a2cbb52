# Two commands a newcomer needs: `make demo` and `make test`. Both create the
# virtual environment and install the pinned dependencies on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint lint-prometheus lint-compose format bench bench-serving bench-drift bench-daily clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/fraud demo

test: $(STAMP)
	$(BIN)/pytest

# Lint and format (ruff), types (mypy over the library), and the import contract: imports run
# one way, from the `fraud` command down to the shared contracts (pyproject.toml, [tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(MAKE) lint-prometheus
	$(MAKE) lint-compose

# Prometheus's config, alert rules and their unit tests, Alertmanager's config (promtool, amtool).
lint-prometheus:
	sh monitoring/prometheus/check.sh

# docker-compose.yml against the Compose spec, without a Docker engine: Debian's docker-compose
# (1.29) validates keys, types and depends_on conditions offline (.ci/run installs it).
lint-compose:
	@command -v docker-compose >/dev/null 2>&1 || { \
	  echo "lint-compose needs docker-compose: apt-get install docker-compose" >&2; exit 1; }
	docker-compose -f docker-compose.yml config -q

# Apply ruff's fixes and formatting.
format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Speed and scale, measured against a baseline in the same run (see benchmarks/).
bench: $(STAMP) bench-serving bench-drift bench-daily
	$(BIN)/python -m benchmarks.handbook_evaluation

# Operated day after day: per-day skew and drift (daily_replay); the daily job on the book's data.
bench-daily: $(STAMP)
	$(BIN)/python -m benchmarks.daily_replay
	$(BIN)/python -m benchmarks.refresh_book

# The drift job over 1 million logged requests, against reading the log alone.
bench-drift: $(STAMP)
	$(BIN)/python -m benchmarks.drift

# The scorer against Feast's feature server and a bare FastAPI app, driven by wrk
# (installed from Debian's packages when missing). BENCH_SERVING_ARGS passes options,
# e.g. make bench-serving BENCH_SERVING_ARGS='--workers 2 --duration 20'.
bench-serving: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && $$SUDO apt-get install -y wrk; }
	$(BIN)/python -m benchmarks.serving $(BENCH_SERVING_ARGS)

clean:
	rm -rf $(VENV) .fraud-data
