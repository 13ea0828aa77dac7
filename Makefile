# synthgen: `make demo` runs the main job on the embedded sample data; `make test` runs the suite.
# Both create .venv and install everything first (scripts/setup.sh).

VENV := .venv
PY := $(VENV)/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo test test-fast lint bench docker-lint clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/synthgen demo --rows 5000

# One pytest worker per core; a file's tests stay on one worker (module fixtures are built once).
TEST_WORKERS ?= auto

test: setup
	@bash scripts/check-services.sh
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not airflow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy synthgen

bench: setup
	$(PY) -m bench $(BENCH)

clean:
	rm -rf .synthgen .pytest_cache .mypy_cache .ruff_cache
