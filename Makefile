# fslcourse: set-up, notebooks and tests in a few commands.
#
#   make setup      create .venv (Python 3.11) and install everything; a no-op when up to date
#   make lab        setup, then JupyterLab on notebooks/ (LAB_DIR=build/student: the student edition)
#   make test       setup, then ruff (lint, import order), the unit tests and every notebook (nbval, CPU)
#   make clean      remove build artefacts and caches (keeps .venv)
#   make distclean  clean, and remove .venv and node_modules/ too
#
# Variables (override on the command line, e.g. `make setup VENV=/tmp/venv`):
#   VENV            the virtual environment (default .venv)
#   PYTHON          the Python 3.11 that creates it (default python3.11, else python3 if it is 3.11)
#   FSLCOURSE_DATA  folder holding omniglot/ for the notebooks and tests (default ../shared/data if it exists)
#   TORCH_PIP_ARGS  extra pip options for the torch step only (e.g. an --index-url of CPU-only wheels)
#   PYTEST_ARGS     extra pytest options for `make test` (e.g. -x, -k protonet)
#   TEST_WORKERS    pytest-xdist processes for `make test` (default: the CPU cores, at most 4; 0 runs in one process)
#   LAB_DIR         the folder `make lab` opens (default notebooks/; build/student for the student edition)

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 2>/dev/null || \
	{ python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null && command -v python3; })
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip --disable-pip-version-check --no-input
# Hides pip's long list of "Requirement already satisfied" lines and warnings about
# unreachable local index folders (pip's exit status is kept).
QUIET_SATISFIED := 2>&1 | { grep -v -E "^(Requirement already satisfied|Looking in (indexes|links):|WARNING: Location '.*' is ignored)" || true; }

TORCH_PINS := torch==2.14.1 torchvision==0.29.1
TORCH_PIP_ARGS ?=

# The stamp's name carries a hash of the files that decide what is installed, so
# editing either of them makes the next `make setup` install again.
SETUP_INPUTS := pyproject.toml scripts/build_learn2learn.py
SETUP_HASH := $(shell cat $(SETUP_INPUTS) 2>/dev/null | sha256sum | cut -c1-16)
STAMP := $(VENV)/.fslcourse-setup-$(SETUP_HASH)

FSLCOURSE_DATA ?= $(if $(wildcard ../shared/data/omniglot),$(abspath ../shared/data))
# a relative folder is made absolute (the notebooks run from notebooks/, where it points elsewhere); an absolute
# one, or one under ~ (the package expands it), is kept as given, spaces and all
override FSLCOURSE_DATA := $(if $(filter /% ~%,$(firstword $(FSLCOURSE_DATA))),$(FSLCOURSE_DATA),$(if $(FSLCOURSE_DATA),$(CURDIR)/$(FSLCOURSE_DATA)))
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
NBVAL_SANITIZE := $(if $(wildcard tests/nbval_sanitize.cfg),--nbval-sanitize-with tests/nbval_sanitize.cfg)
PYTEST_ARGS ?=
# One worker per core (each test file, so each notebook, runs whole on one worker, in order: --dist loadfile).
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n > 4 ? 4 : n )))
XDIST := $(if $(filter 0 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

# Targets `make test` needs besides setup; mk/course.mk may add to it (e.g. web-assets).
TEST_DEPS :=

# Course builds (student/instructor editions, slides, HTML): see docs/INSTRUCTORS.md.
-include mk/course.mk

.PHONY: help setup lab lab-dir test clean distclean

help:
	@grep -h '^#   make ' Makefile $(wildcard mk/course.mk) | sed 's/^#   //'

setup: $(STAMP)
	@echo "setup: $(VENV) is up to date (stamp $(notdir $(STAMP)); edit pyproject.toml or scripts/build_learn2learn.py, or run 'make distclean', to install again)"

$(STAMP):
	@echo "==> setup: installing into $(VENV) (no stamp $(notdir $(STAMP)) yet: first run, or $(SETUP_INPUTS) changed)"
	@if [ -x "$(VPY)" ]; then \
		echo "==> [1/6] virtual environment: skipped, $(VENV) exists"; \
	else \
		if [ -z "$(PYTHON)" ]; then \
			echo "ERROR: no Python 3.11 found (neither python3.11 nor a python3 that is 3.11)."; \
			echo "  fix: install Python 3.11, or name it: make setup PYTHON=/path/to/python3.11"; \
			exit 1; \
		fi; \
		echo "==> [1/6] virtual environment: creating $(VENV) with $(PYTHON)"; \
		"$(PYTHON)" -m venv "$(VENV)" || { echo "ERROR: could not create $(VENV)."; \
			echo "  fix: on Debian/Ubuntu 'apt-get install python3.11-venv', then 'make setup' again"; exit 1; }; \
	fi
	@"$(VPY)" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' || { \
		echo "ERROR: $(VENV) runs Python $$("$(VPY)" -V 2>&1), fslcourse needs 3.11."; \
		echo "  fix: make distclean && make setup PYTHON=/path/to/python3.11"; exit 1; }
	@echo "==> [2/6] pip, setuptools, wheel: upgrading"
	@$(PIP) install --quiet --upgrade pip setuptools wheel
	@if "$(VPY)" -c 'import importlib.metadata as m, sys; sys.exit(any(m.version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))' $(TORCH_PINS) 2>/dev/null; then \
		echo "==> [3/6] $(TORCH_PINS): skipped, already installed"; \
	else \
		echo "==> [3/6] $(TORCH_PINS): installing first, as a matched pair (a few minutes on a fresh machine)"; \
		$(PIP) install $(TORCH_PIP_ARGS) $(TORCH_PINS); \
	fi
	@echo "==> [4/6] learn2learn 0.2.0: scripts/build_learn2learn.py (its PyPI sdist does not build on Python 3.11)"
	@"$(VPY)" scripts/build_learn2learn.py
	@echo "==> [5/6] fslcourse and its dependencies: pip install -e '.[dev]'"
	@set -o pipefail; $(PIP) install -e '.[dev]' $(QUIET_SATISFIED)
	@echo "==> [6/6] check: imports from outside the repository, and the venv's Jupyter kernel"
	@cd / && "$(abspath $(VPY))" -c 'import torch, torchvision, learn2learn, fslcourse, ipykernel, nbval, jupyterlab, ipywidgets; \
		print("    torch", torch.__version__, "| torchvision", torchvision.__version__, "| learn2learn", learn2learn.__version__, \
		"| fslcourse from", fslcourse.__path__[0])' 2>/dev/null || { \
		echo "ERROR: an import failed in $(VENV); the traceback:"; \
		cd / && "$(abspath $(VPY))" -c 'import torch, torchvision, learn2learn, fslcourse, ipykernel, nbval, jupyterlab, ipywidgets'; exit 1; }
	@rm -f "$(VENV)"/.fslcourse-setup-*
	@echo "$(SETUP_HASH) sha256 of $(SETUP_INPUTS), installed $$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$(STAMP)"
	@echo "==> setup: done. Next: 'make lab' to open the notebooks, '$(VPY) -m fslcourse doctor' to check data and device."

LAB_DIR ?= notebooks/
lab: lab-dir setup
	$(if $(FSLCOURSE_DATA),FSLCOURSE_DATA="$(FSLCOURSE_DATA)") "$(VENV)/bin/jupyter" lab "$(LAB_DIR)" $(ALLOW_ROOT)

lab-dir:  # before set-up, which takes minutes on a fresh clone
	@test -d "$(LAB_DIR)" || { echo "LAB_DIR=$(LAB_DIR) is not a folder; for the student edition run 'make student' first"; exit 2; }

# FSLCOURSE_DEVICE=cpu and OMP_NUM_THREADS=1 keep stored notebook outputs identical on every
# machine (a fixed thread count fixes the order of floating-point reductions);
# --nbval-current-env runs the notebooks with this venv's Python, whatever kernel
# their metadata names. MPLBACKEND is unset on purpose: the notebook kernels
# inherit it, and MPLBACKEND=Agg there would stop them from showing figures, so
# every stored figure output would differ. Unit tests get Agg from tests/conftest.py.
test: setup $(TEST_DEPS)
	"$(VENV)/bin/ruff" check .
	env -u MPLBACKEND OMP_NUM_THREADS=1 FSLCOURSE_DEVICE=cpu FSLCOURSE_RESULTS="$(abspath build/results)" $(if $(FSLCOURSE_DATA),FSLCOURSE_DATA="$(FSLCOURSE_DATA)") \
		"$(VPY)" -m pytest tests $(NOTEBOOKS) --nbval --nbval-current-env $(NBVAL_SANITIZE) $(XDIST) \
		--durations=15 $(PYTEST_ARGS)

clean:
	rm -rf build dist .pytest_cache .hypothesis
	find . -path ./$(VENV) -prune -o -path ./.git -prune -o -path ./node_modules -prune -o \
		\( -name __pycache__ -o -name '*.egg-info' -o -name .ipynb_checkpoints \) -type d -print0 \
		| xargs -0 rm -rf

distclean: clean
	rm -rf "$(VENV)" node_modules
