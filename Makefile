# The two commands of the README: `make train` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup train test lint typecheck clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: 2.13.0 is a local CPU wheel here; any other version pulls CUDA.
	$(PY) -m pip install --quiet torch==2.13.0
	# The rest under a constraint that keeps the pinned torch (transformers must not pull another).
	echo "torch==2.13.0" > $(VENV)/torch-constraint.txt
	$(PY) -m pip install --quiet -c $(VENV)/torch-constraint.txt -e ".[atari,box2d,compare,dev,export,lm,lm-compare,minatar,mujoco,ray,tune,video,wandb]"
	touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)
	$(VENV)/bin/ppokit train

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The suite on up to 4 cores (pytest-xdist), each test file on one worker (its module fixtures built once).
test: lint typecheck
	$(PY) -m pytest -n auto --maxprocesses 4 --dist loadfile

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
