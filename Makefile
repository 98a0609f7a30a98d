# `make fit` and `make test` set up .venv on first use (offline-capable where torch's wheel is at hand).
# TORCH picks the torch build: the default is the CPU wheel these project machines keep on disk; elsewhere
# e.g. `make test TORCH=torch` (PyPI's default build) or a CUDA build of your choice.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin

.PHONY: fit test test-fast lint clean

$(BIN)/kt: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

fit: $(BIN)/kt  ## the main job: DKT on simulated students (no download), logs in lightning_logs/dkt_synthetic
	$(BIN)/kt fit --config dkt_synthetic

# pytest's exit code 5 means it collected no tests: a broken test selection, so it fails here like any other.
test: $(BIN)/kt  ## the whole test suite (real-data tests run when KT_DATA_DIR points at the data)
	$(BIN)/python -m pytest -q || { rc=$$?; [ $$rc -ne 5 ] || echo "make test: pytest collected no tests" >&2; exit $$rc; }

test-fast: $(BIN)/kt  ## the suite without the tests marked slow (DDP, SIGKILL, long end-to-end runs)
	$(BIN)/python -m pytest -q -m "not slow" || { rc=$$?; [ $$rc -ne 5 ] || echo "make test-fast: pytest collected no tests" >&2; exit $$rc; }

lint: $(BIN)/kt
	$(BIN)/ruff check kt tests scripts

clean:
	rm -rf $(VENV) lightning_logs
