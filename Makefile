# MFT: every target creates or reuses the local virtual environment itself.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CLUSTER_WORKERS ?= 1
export RAY_USAGE_STATS_ENABLED := 0
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install demo test test-slow lint bench clean cluster-up cluster-down

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned, so nothing pulls a multi-gigabyte CUDA build
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install MFT with dev tools

demo: $(STAMP)  ## the main job end to end on the bundled real data
	$(BIN)/mft demo

test: $(STAMP)  ## the test suite (fast; slow learning tests: make test-slow)
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

lint: $(STAMP)  ## ruff and mypy, failing on findings
	$(BIN)/ruff check .
	$(BIN)/mypy features envs rl tune serve cluster

bench: $(STAMP)  ## speed figures (see docs/benchmarks.md)
	$(BIN)/python -m features.data.bench
	$(BIN)/python -m features.bench
	$(BIN)/python -m envs.bench
	$(BIN)/python -m rl.evaluation.bench
	$(BIN)/python -m rl.bench_backtest
	$(BIN)/python -m rl.bench_train
	$(BIN)/python -m serve.bench_serve  # ~8 min: trains five tiny runs, loopback load and a replica kill

cluster-up: $(STAMP)  ## a local multi-node Ray cluster: head + worker node(s), token auth (docs/cluster.md)
	$(BIN)/python -m cluster.local up --workers $(CLUSTER_WORKERS)

cluster-down:  ## stop the local cluster (its own processes only, never `ray stop`)
	$(BIN)/python -m cluster.local down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
