PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed.stamp
TORCH  := torch==2.13.0

.PHONY: venv test demo bench clean

venv: $(STAMP)

# Re-install only when pyproject.toml changes (or the venv is missing).
# Pinned torch goes in first: it resolves to the local CPU wheel (2.13.0+cpu);
# a bare `torch` requirement would pull multi-GB CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install "$(TORCH)"
	$(PIP) install -e ".[dev,rllib]"
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
