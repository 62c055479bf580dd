# Quick start: `make demo` (set-up + embedded demo) and `make test` (set-up + test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Extra pip arguments for torch, e.g. TORCH_PIP_ARGS=--index-url=https://download.pytorch.org/whl/cpu
# for the CPU-only build where pip would otherwise take PyPI's CUDA-bundled wheel.
TORCH_PIP_ARGS ?=

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0 $(TORCH_PIP_ARGS)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	PATH=$(abspath $(VENV))/bin:$$PATH snakemake --profile profiles/default --configfile config/demo.yaml --cores all
	@echo "Demo finished: tables in results/tables/ (paper.tex, one CSV per task), figures in results/figures/, runs in results/runs/"

test: setup
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/snakefmt --check Snakefile workflow

clean:
	rm -rf results resources logs benchmarks .snakemake
