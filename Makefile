# The set-up and the everyday commands. Every target creates .venv if needed and installs
# what it uses, so a fresh clone needs nothing but Python 3.11+ and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEV_STAMP := $(VENV)/.installed-dev
DEMO_STAMP := $(VENV)/.installed-demo
DOCS_STAMP := $(VENV)/.installed-docs
SPHINX_OPTS ?=
PYTEST_ARGS ?=

.PHONY: demo explore example browser fast-allocator bench-allocators bench-peer reproduce arc-study test test-slow lint format bench bench-quick dist dist-check docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEV_STAMP): $(BIN)/python pyproject.toml applications/arc/pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]" -e "applications/arc[explore,browser-test]"
	touch $@

$(DEMO_STAMP): $(BIN)/python pyproject.toml applications/arc/pyproject.toml
	$(BIN)/python -m pip install --quiet -e . -e "applications/arc[explore]"
	touch $@

$(DOCS_STAMP): $(BIN)/python pyproject.toml applications/arc/pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,docs]" -e applications/arc
	touch $@

# tcmalloc makes XLA's CPU steps 2-3x faster here; installed where apt-get can (root).
fast-allocator:
	@ls /usr/lib/*/libtcmalloc_minimal.so.4 >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    (apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null 2>&1 && \
	      apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1)) || \
	    echo "note: tcmalloc not installed; lpn-arc runs on glibc malloc (slower)"; }

## demo: install the library and the application, run the pattern quickstart
demo: $(DEMO_STAMP) fast-allocator
	$(BIN)/lpn-arc quickstart

## explore: the latent-space explorer of the shipped pattern model (http://localhost:7860)
explore: $(DEMO_STAMP) fast-allocator
	$(BIN)/lpn-arc explore

# Debian's Chromium and its driver, for the explorer's browser test (tests/arc/explorer);
# installed where apt-get can (root), else that test is skipped with the reason.
browser:
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    (apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null 2>&1 && \
	      apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1)) || \
	    echo "note: chromium not installed; the explorer's browser test will be skipped"; }

## example: the library's own toy example (sine programs, pure JAX)
example: $(DEMO_STAMP)
	$(BIN)/python examples/toy_lpn.py

## test: lint, format check, the test suite and the doctests
test: $(DEV_STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

## test-slow: only the tests marked slow
test-slow: $(DEV_STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench-quick / bench: the benchmarks (results under benchmarks/results/)
## (one entry point, python -m benchmarks.run_all; it prints the summary table at the end)
bench-quick: $(DEV_STAMP) fast-allocator
	$(BIN)/python -m benchmarks.run_all --quick

bench: $(DEV_STAMP) fast-allocator bench-allocators
	$(BIN)/python -m benchmarks.run_all

## reproduce: the paper's Table 1 and OOD trend at CPU scale (about 2 hours here; resumable)
##   make reproduce REPRODUCE_ARGS="--seeds 0 1 2"   (adds a seed; finished runs are reused)
REPRODUCE_ARGS ?=
reproduce: $(DEV_STAMP) fast-allocator
	nice $(BIN)/python -m benchmarks.reproduce_paper $(REPRODUCE_ARGS)

## arc-study: the ARC study of this CPU (arc-cpu preset; measured: 49 + 15 min of training
##   and 15 min of evaluation beside other jobs; resumable):
##   make arc-study ARC_STUDY_ARGS="--parts b --searches mean"
ARC_STUDY_ARGS ?=
arc-study: $(DEV_STAMP) fast-allocator
	nice $(BIN)/python -m benchmarks.arc_cpu_study $(ARC_STUDY_ARGS)

## bench-peer: ours vs the official LPN code, side by side (benchmarks/README.md: set-up)
##   make bench-peer OFFICIAL=/path/to/lpn OFFICIAL_PYTHON=/path/to/venv/bin/python
bench-peer: $(DEV_STAMP) fast-allocator
	@[ -n "$(OFFICIAL)" ] && [ -n "$(OFFICIAL_PYTHON)" ] || \
	  { echo "usage: make bench-peer OFFICIAL=CHECKOUT OFFICIAL_PYTHON=PYTHON (benchmarks/README.md)"; exit 2; }
	$(BIN)/python -m benchmarks.bench_peer --official "$(OFFICIAL)" --official-python "$(OFFICIAL_PYTHON)"

# jemalloc too, for the allocator comparison of the full run (bench_allocator.py)
bench-allocators:
	@ls /usr/lib/*/libjemalloc.so.2 >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    (apt-get install -y -qq libjemalloc2 >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libjemalloc2 >/dev/null 2>&1)) || \
	    echo "note: jemalloc not installed; bench_allocator.py skips it"; }

## dist: build the sdist and wheel of both packages (dist/) and check them with twine
dist: $(DEV_STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/python -m build --outdir dist applications/arc
	$(BIN)/python -m twine check --strict dist/*

## dist-check: both wheels and their dependencies (from the package index) in a clean venv
## (build/dist-venv); there, the README's tour runs and lpn-arc lists its shipped models
dist-check: dist
	rm -rf build/dist-venv
	$(PYTHON) -m venv build/dist-venv
	build/dist-venv/bin/python -m pip install --quiet dist/latentsearch-*.whl dist/lpn_arc-*.whl
	build/dist-venv/bin/python -m pip check
	awk '/^```python/{f=1;next} /^```/{if(f)exit} f' README.md > build/readme_tour.py
	cd build && dist-venv/bin/python -I readme_tour.py
	build/dist-venv/bin/lpn-arc models

## docs: build the HTML docs (warnings are errors), execute the tutorial, run the doctests
# A clean build each time, so the tutorial always runs; the doctest pass reuses the first
# pass's environment and the executed tutorial from jupyter-cache. HTML: docs/_build/html.
docs: $(DOCS_STAMP) fast-allocator
	rm -rf docs/_build docs/_generated
	cd docs && LD_PRELOAD="$$(ls /usr/lib/*/libtcmalloc_minimal.so.4 2>/dev/null | head -n 1)" \
	  ../$(BIN)/sphinx-build -W --keep-going -b html -d _build/doctrees $(SPHINX_OPTS) . _build/html
	cd docs && ../$(BIN)/sphinx-build -W --keep-going -b doctest -d _build/doctrees $(SPHINX_OPTS) . _build/doctest

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache docs/_build docs/_generated
