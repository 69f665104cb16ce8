# Two commands matter: `make demo` (the production line on embedded defaults) and `make test`.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install system-deps services test demo sim clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

system-deps:
	./scripts/system-deps.sh

services: system-deps
	./scripts/docker-engine.sh
	./docker/build-sim-image.sh

test: install services
	$(PY) -m pytest -q $(PYTEST_ARGS)

sim: install
	$(VENV)/bin/changeline sim up --count 6 --foreground

demo: install
	$(VENV)/bin/changeline demo

clean:
	rm -rf $(VENV) .changeline .pytest_cache
