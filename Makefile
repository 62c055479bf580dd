# Quick start: `make demo` (set-up + embedded demo) and `make test` (set-up + test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
# The interpreter that creates the venv: CPython 3.11 (the lock's Python), e.g. PYTHON=python3.11.
PYTHON ?= python3
# Which torch build the venv gets (both torch==2.13.0, see requirements/README.md):
#   cpu  (default) PyTorch's CPU-only wheel, torch-2.13.0+cpu (requirements/torch-cpu.txt);
#   cuda PyPI's wheel with its CUDA libraries (requirements/torch-cuda.txt): `make setup TORCH=cuda`.
# Later make commands keep the variant the venv has.
TORCH ?= $(or $(shell cat $(VENV)/.torch 2>/dev/null),cpu)
ifeq ($(filter $(TORCH),cpu cuda),)
$(error TORCH=$(TORCH) is not a torch build of the lock: use TORCH=cpu (default) or TORCH=cuda)
endif
# Extra pip arguments for torch only, e.g. TORCH_PIP_ARGS='--find-links DIR' where the CPU wheel
# lies (without it and where pip finds none, the set-up retries with PyTorch's CPU index).
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.installed-$(TORCH)

.PHONY: setup lock demo test lint clean

setup: $(STAMP)

# Installs requirements/lock.txt and requirements/torch-$(TORCH).txt with --require-hashes, then
# the package itself without dependencies (scripts/setup_env.py).
$(STAMP): pyproject.toml requirements/lock.txt requirements/torch-$(TORCH).txt scripts/setup_env.py
	$(PYTHON) scripts/setup_env.py --venv $(VENV) --torch $(TORCH) --torch-pip-args "$(TORCH_PIP_ARGS)"

# Re-resolve the lock after a change to pyproject.toml's dependencies (keeps the current pins where
# they still fit; UPGRADE=1 takes the newest allowed versions). Needs PyPI and the CPU torch wheel,
# and uv from the venv: a set-up that fails its final `pip check` (pyproject asks for what the old
# lock lacks) has installed it already.
lock:
	test -x $(VENV)/bin/uv || $(MAKE) setup || test -x $(VENV)/bin/uv
	$(PY) scripts/lock.py $(if $(UPGRADE),--upgrade)

demo: setup
	PATH=$(abspath $(VENV))/bin:$$PATH snakemake --profile profiles/local --configfile config/demo.yaml
	@echo "Demo finished: tables in results/tables/ (paper.tex, one CSV per task), figures in results/figures/, runs in results/runs/"

test: setup
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/snakefmt --check Snakefile workflow
	$(VENV)/bin/mypy

clean:
	rm -rf results resources logs benchmarks .snakemake
