# Two commands matter: `make demo` and `make test`. Each builds .venv itself on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test screenshots lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/livestreams demo

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
