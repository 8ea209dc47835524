# Two commands: `make demo` and `make test`. Both create or refresh .venv first.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench venv clean

venv: $(STAMP)

# torch==2.13.0 first: a CPU build on this machine's disk; an open range would pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mbrl-tune demo

# Two workers (this machine's two cores; most tests wait on Ray and subprocesses): each test module, and
# the analysis package, runs whole on one worker (tests/conftest.py's scheduler), so its fixtures are made once.
test: $(STAMP)
	$(BIN)/ruff check trials search_spaces tuner analysis tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 2 --durations=15 tests

lint: $(STAMP)
	$(BIN)/ruff check trials search_spaces tuner analysis tests benchmarks
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV)
