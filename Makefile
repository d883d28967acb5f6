# Two commands for a fresh machine: `make demo` runs the main job, `make test` the tests.
# Both create (or reuse) the venv in .venv and install the project into it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cfcclone-installed

.PHONY: demo test test-quick lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# A CPU torch wheel first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,plot,export,minari,human,mujoco,sb3,tensorboard]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cfcclone demo

# two test processes (pytest-xdist): most tests wait on emulators, subprocesses or torchrun
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist worksteal

test-quick: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist worksteal -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check cfcclone tests scripts
	$(VENV)/bin/ruff format --check cfcclone tests scripts

clean:
	rm -rf $(VENV) build *.egg-info
