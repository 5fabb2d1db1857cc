# The diffusion reproduction book.
#
#   make book     build the HTML book from the committed notebooks (no execution)
#   make test     run every test: library, notebooks (papermill smoke + nbval), book build, browser
#
# Both create the virtual environment ($(VENV)) when it is missing and install the project into it
# from requirements/constraints.txt. The install is skipped while pyproject.toml and the
# constraints file are unchanged (a stamp file in the venv keyed on their hash).
#
# Also:
#   make smoke [NB=01] [PARAMS="seed=1"]    every notebook (or NB) with the smoke profile, into runs/
#   make run NB=00_forward_process PROFILE=cpu [PARAMS="n_toy=500 T=200"]
#                                           one notebook through papermill, into runs/
#   make record NB=00_forward_process       re-execute a notebook in place with the cpu profile
#                                           (what gets committed), then re-sync its .py twin
#   make record NB=02 PROFILE=gpu           the same chapter on one GPU: book/gpu/ and book/results/gpu/,
#                                           beside the cpu record (tools/device_session.sh runs it there)
#   make claims [NB=02_ddpm]                re-derive the verdicts from the stored records (no training)
#                                           and store them in book/results (tools/claims.py)
#   make wheel                              the library as a wheel in dist/ (to upload to Colab by hand
#                                           while the repository is not public)
#   make lab                                JupyterLab with jupytext pairing of notebooks/
#   make bench [BENCH_ARGS="--peak-tflops 989"] ddpm_lib's UNet against diffusers', into book/performance/
#   make device-wheels                      the wheels a lent GPU machine without network lacks, into .whl/
#   make sync                               jupytext --sync every pair, after syncing the repo URL
#   make diagrams                           redraw the book's diagrams (ddpm_lib.diagrams) into book/assets/diagrams/
#   make constraints                        regenerate requirements/constraints.txt from the venv

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONSTRAINTS := requirements/constraints.txt
INSTALL_HASH := $(shell cat pyproject.toml $(CONSTRAINTS) | sha256sum | cut -c1-16)
STAMP := $(VENV)/.ddpm-install-$(INSTALL_HASH)
LAB_STAMP := $(VENV)/.ddpm-lab-$(INSTALL_HASH)
PYTEST_ARGS ?=

export PATH := $(abspath $(VENV))/bin:$(PATH)
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export DDPM_PLAIN_PROGRESS := 1
export PYTHONDONTWRITEBYTECODE := 1
# spinning OpenMP threads make contended CPU training up to 40x slower (see ddpm_lib/__init__.py)
export OMP_WAIT_POLICY := PASSIVE

.PHONY: help install book test smoke run record claims wheel lab sync mathjax chromium constraints clean bench device-wheels diagrams

help:
	@sed -n '2,/^$$/{/^#/p}' Makefile | sed 's/^# \{0,1\}//'

# ---- environment --------------------------------------------------------------------------
$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): | $(PY)
	@echo "Installing ddpm_lib[dev] into $(VENV) (pinned by $(CONSTRAINTS)) ..."
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e '.[dev]'
	@rm -f $(VENV)/.ddpm-install-*
	@touch $(STAMP)

install: $(STAMP)

$(LAB_STAMP): $(STAMP)
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e '.[dev,lab]'
	@rm -f $(VENV)/.ddpm-lab-*
	@touch $(LAB_STAMP)

# Debian's Chromium for the browser test (Playwright never downloads its own browsers here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser test ..."; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# MathJax 3 from the npm registry into book/_extra/_static/mathjax (the build also does this).
mathjax: install
	$(PY) book/_ext/offline.py

# ---- the book -----------------------------------------------------------------------------
book: install
	$(PY) tools/sync_repo_url.py --check
	$(VENV)/bin/jupyter-book build -W --keep-going .
	@echo
	@echo "The book is at file://$(abspath _build)/html/index.html"

# ---- tests --------------------------------------------------------------------------------
test: install chromium
	$(PY) -m pytest $(PYTEST_ARGS)

# ---- the library as a wheel -------------------------------------------------------------
wheel: install
	$(PY) -m pip wheel --no-deps --no-build-isolation -q -w dist .
	@ls dist/*.whl

# ---- benchmarks ---------------------------------------------------------------------------
# ddpm_lib's DDPM CIFAR-10 UNet against diffusers' (training, one step, a DDIM loop), side by side;
# the results (JSON and the Markdown table the book's Performance page includes) go to book/performance/.
BENCH_DEVICE ?= $(shell $(PY) -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo cpu)
bench: install
	$(PY) benchmarks/unet_speed.py --device $(BENCH_DEVICE) $(BENCH_ARGS) \
	  --out book/performance/$(BENCH_DEVICE).json --markdown book/performance/$(BENCH_DEVICE).md

# The wheels a lent GPU machine without network lacks (papermill, jupytext, ipykernel, diffusers, ...), for
# tools/device_session.sh there; .whl/ is ignored by git and carried by the device tool.
device-wheels:
	$(PYTHON) tools/device_wheels.py --dest .whl

# ---- notebooks ----------------------------------------------------------------------------
# PARAMS as one single-quoted shell word (a ' inside becomes '\''): brackets, parentheses and spaces in a
# value reach tools/run_notebook.py intact, which splits it before each NAME= (PARAMS="scales=[0.0, 1.0] seed=1")
PARAMS_ARG = '$(subst ','\'',$(PARAMS))'
smoke: install
	@if [ -n "$(PROFILE)" ] && [ "$(PROFILE)" != smoke ]; then \
	  echo "error: make smoke runs the smoke profile only (PROFILE=$(PROFILE) given); use make run NB=.. PROFILE=$(PROFILE)"; exit 2; fi
	$(PY) tools/run_notebook.py $(if $(NB),"$(NB)",--all) --profile smoke --params $(PARAMS_ARG)

run: install
	$(PY) tools/run_notebook.py "$(NB)" --profile "$(PROFILE)" --params $(PARAMS_ARG)

record: install
	$(PY) tools/run_notebook.py "$(NB)" --record $(if $(PROFILE),--profile "$(PROFILE)")

claims: install
	$(PY) tools/claims.py --write $(NB)

diagrams: install
	$(PY) tools/diagrams.py

sync: install
	$(PY) tools/sync_repo_url.py
	$(VENV)/bin/jupytext --sync notebooks/*.ipynb

LAB_ARGS ?=
lab: $(LAB_STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

constraints: install
	@{ sed -n '/^# Exact/,/^#   make constraints/p' $(CONSTRAINTS); \
	   $(PY) -m pip list --format=freeze 2>/dev/null | grep -viE '^(ddpm.lib|pip|setuptools|wheel)=' \
	   | sed -E 's/^torch==.*/torch==2.13.0/'; } > $(CONSTRAINTS).new && mv $(CONSTRAINTS).new $(CONSTRAINTS)
	@echo "wrote $(CONSTRAINTS)"

clean:
	rm -rf _build runs book/_extra
