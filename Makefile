# Two commands on a fresh machine: `make run` runs the bot, `make test` passes the tests.
# Both bootstrap everything they need (Python venv; for tests also Node packages and Chromium).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CHROMIUM := /usr/bin/chromium
PLAYGROUND_PORT ?= 56150
PORT ?= 3978

.PHONY: run test test-fast playground package bench lint typecheck deps e2e-deps clean

run: $(PIP_STAMP)
	$(PY) -m bot

test: $(PIP_STAMP) e2e-deps
	$(PY) -m pytest -q

test-fast: $(PIP_STAMP) $(NODE_STAMP)
	$(PY) -m pytest -q -m "not e2e and not browser and not azurite"

deps: $(PIP_STAMP)

$(PIP_STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock ".[dev]"
	touch $@

e2e-deps: $(NODE_STAMP) $(CHROMIUM)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CHROMIUM):
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null

playground: $(NODE_STAMP)
	TEAMSAPPTESTER_BROWSER=none APPLICATION_INSIGHTS_NO_STATSBEAT=true \
	  npx agentsplayground start -e http://localhost:$(PORT)/api/messages -c msteams -p $(PLAYGROUND_PORT) --disable-telemetry

package: $(PIP_STAMP)
	$(PY) -m bot package

bench: $(PIP_STAMP)
	$(PY) -m bench

lint: $(PIP_STAMP)
	$(PY) -m ruff check .

typecheck: $(PIP_STAMP)
	$(PY) -m mypy

clean:
	rm -rf $(VENV) node_modules build .pytest_cache
