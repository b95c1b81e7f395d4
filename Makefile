# Two commands matter: `make demo` and `make test`. Each builds .venv itself on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The demo needs only the product; the tests, linters and benchmarks need the dev tools too.
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test screenshots lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(DEMO_STAMP)

# DEMO_ARGS=--keep: stays up after the run, with its HTTP API and ops page, until Ctrl-C.
DEMO_ARGS ?=
demo: $(DEMO_STAMP)
	$(BIN)/livestreams demo $(DEMO_ARGS)

# Parallel test workers: most tiers wait on processes and sockets, not on the CPU, so more
# workers than cores. Each worker has its own databases, Redis servers and ports. A test file
# runs whole on one worker (loadfile), so a module's shared processes start once.
# One tier, or one file: `make test TESTS=tests/unit`.
TEST_WORKERS ?= 4
TESTS ?=
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=25 $(TESTS)

# The README's pictures, taken again on purpose (a test run writes its screenshots elsewhere).
screenshots: $(STAMP)
	SCREENSHOTS_DIR=tests/screenshots $(BIN)/python -m pytest tests/browser \
		-k "test_sign_in_filter_open_a_booking_and_bulk_cancel or test_see_a_failing_endpoint"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) livestreams.db livestreams.db.key .demo
