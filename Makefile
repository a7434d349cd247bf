# The first Python >= 3.11 on PATH (override with `make PYTHON=/path/to/python`).
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 python3.11 python3 python; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed.stamp
CONSTRAINTS := constraints.txt

.PHONY: venv test demo bench clean

venv: $(STAMP)

# Re-install only when pyproject.toml or the constraints change (or the venv is missing).
# The reproducible setup: every package at the version in constraints.txt. torch goes in
# first: it resolves to the local CPU wheel (2.13.0+cpu); a bare `torch` requirement would
# pull multi-GB CUDA wheels. The tests use the recipes' libraries and Ray, so both extras.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -n "$(PYTHON)" || { echo "no Python >= 3.11 on PATH: make PYTHON=/path/to/python3.11+"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -c $(CONSTRAINTS) torch
	$(PIP) install -c $(CONSTRAINTS) -e ".[dev,recipes,rllib]"
	touch $(STAMP)

test: venv
	SDL_VIDEODRIVER=dummy $(PY) -m pytest -q -n 2 --dist loadfile

demo: venv
	$(VENV)/bin/villages demo

bench: venv
	@set -e; for f in benchmarks/*.py; do \
		[ -e "$$f" ] || { echo "no benchmarks found"; exit 0; }; \
		echo "== $$f"; SDL_VIDEODRIVER=dummy $(PY) "$$f"; \
	done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
