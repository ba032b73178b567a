# Everything sets itself up: a fresh clone only needs python3 (>= 3.10) and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HASH   := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# the demo needs the package and the simulator only; tests, lint and notebooks need the rest
DEMO   := $(VENV)/.demo-$(HASH)
STAMP  := $(VENV)/.installed-$(HASH)

# uv installs in seconds what pip takes most of a minute for; pip stays the fallback
PIP     = $(shell [ -x $(BIN)/uv ] && echo '$(BIN)/uv pip install --quiet --python $(BIN)/python --overrides uv-overrides.txt' \
            || echo '$(BIN)/python -m pip install --quiet --disable-pip-version-check')
# the test set-up compiles every module's bytecode once, in parallel, as pip does: else the
# four test workers each compile pandas and the rest at once on their first run
COMPILED = $(shell [ -x $(BIN)/uv ] && echo '--compile-bytecode')

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	-$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

$(DEMO): pyproject.toml | $(VENV)/bin/python
	rm -f $(VENV)/.demo-*
	$(PIP) -e '.[sim]'
	touch $(DEMO)

$(STAMP): pyproject.toml uv-overrides.txt | $(VENV)/bin/python
	rm -f $(VENV)/.installed-*
	$(PIP) $(COMPILED) -e '.[sim,dev,notebook,dask]'
	touch $(STAMP) $(DEMO)

## make demo: set up, start the simulator, load and summarise its data, stop it
demo: $(DEMO)
	# bytecode cached even where the environment turns it off (as for the tests): the demo's
	# two processes (it and its simulator) otherwise compile pandas and the rest each time
	PYTHONDONTWRITEBYTECODE= $(BIN)/dfs-analytics demo

## make test: set up, lint, type-check, run the whole test suite
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	# bytecode cached (even where the environment turns it off): each pytest process would
	# otherwise compile and assertion-rewrite every module again, about 7 s of CPU each
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## make bench: the benchmarks (JSON figures on stdout)
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_load.py
	$(BIN)/python benchmarks/bench_bad_day.py
	$(BIN)/python benchmarks/bench_campaign.py
	$(BIN)/python benchmarks/audit_coverage.py

## make notebooks: open the example notebooks in JupyterLab (they start a simulator themselves)
notebooks: $(STAMP)
	$(BIN)/jupyter lab notebooks/

## make simulate: serve the simulator on http://127.0.0.1:8765/v0.2/ (key: demo-key)
simulate: $(DEMO)
	$(BIN)/dfs-analytics simulate --port 8765

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache demo-output
