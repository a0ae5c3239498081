# piman-homeserver: `make run` starts a local homeserver, `make test` runs the
# whole suite on SQLite and PostgreSQL. Both work on a fresh Debian 12 with only
# Python >= 3.11: what is missing is installed (apt-get, with sudo only when
# not root and only when something is missing).

PYTHON ?= python3
VENV := .venv
SYNAPSE_VENV := .venv-synapse
SYNAPSE_SPEC := matrix-synapse[postgres]==1.163.*
PACKAGING := setup.cfg pyproject.toml
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends

JS_DIR := tests/e2e/js
NPM_STAMP := $(JS_DIR)/node_modules/.installed

.PHONY: run test clean python-ok system-deps node-ok

run: $(VENV)/.installed-run
	$(VENV)/bin/piman run

test: $(VENV)/.installed-test $(SYNAPSE_VENV)/.installed $(NPM_STAMP)
	PIMAN_SYNAPSE_VENV=$(CURDIR)/$(SYNAPSE_VENV) $(VENV)/bin/pytest -n 2 --durations=15

clean:
	rm -rf $(VENV) $(SYNAPSE_VENV) piman-data $(JS_DIR)/node_modules

# Debian's python3 has no venv/ensurepip without python3-venv.
python-ok:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "piman needs Python >= 3.11 as '$(PYTHON)' (set PYTHON=...)"; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null \
	  || { $(SUDO) apt-get update && $(APT_INSTALL) python3-venv; }

$(VENV)/bin/python: | python-ok
	$(PYTHON) -m venv $(VENV)

# Stamps are keyed on the packaging files: re-install only when they change.
$(VENV)/.installed-run: $(PACKAGING) | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(PACKAGING) | $(VENV)/bin/python system-deps
	$(VENV)/bin/pip install -q -e '.[postgres,test]'
	touch $@

$(SYNAPSE_VENV)/.installed: Makefile | python-ok system-deps
	[ -x $(SYNAPSE_VENV)/bin/python ] || $(PYTHON) -m venv $(SYNAPSE_VENV)
	$(SYNAPSE_VENV)/bin/pip install -q '$(SYNAPSE_SPEC)'
	touch $@

# PostgreSQL server binaries for the tests' private cluster, and what
# psycopg2 needs to build from source (pg_config, libpq headers, gcc, Python.h).
system-deps: python-ok
	@missing=""; \
	if ! command -v initdb >/dev/null 2>&1 \
	   && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  missing="$$missing postgresql"; fi; \
	if ! command -v pg_config >/dev/null 2>&1; then missing="$$missing libpq-dev"; fi; \
	if ! command -v gcc >/dev/null 2>&1; then missing="$$missing gcc libc6-dev"; fi; \
	if ! $(PYTHON) -c 'import os, sysconfig, sys; \
	    sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then \
	  missing="$$missing python3-dev"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update && $(APT_INSTALL) $$missing; \
	fi

# matrix-js-sdk for the E2EE tests, exactly as tests/e2e/js/package-lock.json pins
# it (npm ci starts from an empty node_modules, so the stamp goes in afterwards).
$(NPM_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json | node-ok
	cd $(JS_DIR) && npm ci --no-audit --no-fund
	touch $@

# Node.js >= 20: matrix-js-sdk 37.5 needs it (from 37.6 on it needs 22).
node-ok:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  echo "installing system packages: nodejs npm"; \
	  $(SUDO) apt-get update && $(APT_INSTALL) nodejs npm; \
	fi
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' \
	  || { echo "the E2EE tests need Node.js >= 20, found $$(node --version)"; exit 1; }
