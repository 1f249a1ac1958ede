# tor-agent: developer entry points. Everything runs on a Debian 12 machine as root.
PY      ?= /usr/bin/python3
VENV    := .venv
BIN     := $(VENV)/bin
# `python -m`: with system site packages, pip installs no script for a tool Debian already provides
# (python3-pytest), so .venv/bin/pytest may not exist.
RUN     := $(BIN)/python -m
APT_PKGS := frr frr-pythontools openvswitch-switch python3-openvswitch python3-pyroute2 python3-click \
            python3-jinja2 python3-yaml python3-venv python3-pip iproute2 iputils-ping nftables ethtool procps \
            python3-hypothesis curl lldpd

VENV_PYPI := .venv-pypi

.PHONY: deps venv lint test unit unit-pypi docs clean

# Install Debian packages (only those missing) and the project's venv. Idempotent.
deps:
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@$(MAKE) --no-print-directory venv

# Debian's python3 with its system packages visible: the code runs on Debian 12's library versions.
venv: $(BIN)/tor-agent
$(BIN)/tor-agent: pyproject.toml
	$(PY) -m venv --system-site-packages $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

lint: venv
	$(RUN) ruff check tor_agent tests labs bench
	$(RUN) ruff format --check tor_agent tests labs bench
	$(RUN) mypy

unit: venv
	$(RUN) pytest -q tests/unit

# The same unit tests against the newest PyPI releases of every dependency.
unit-pypi: $(VENV_PYPI)/bin/tor-agent
	$(VENV_PYPI)/bin/python -m pytest -q tests/unit
$(VENV_PYPI)/bin/tor-agent: pyproject.toml
	$(PY) -m venv $(VENV_PYPI)
	$(VENV_PYPI)/bin/pip install -q --upgrade -e '.[dev]'
	@touch $@

# The whole suite: lint, unit tests on PyPI's versions, then unit + lab tests on Debian 12's (as root).
# The package test runs first: it refuses to touch a machine where /etc, /var/lib or /run/tor-agent already
# exist (the driver and lab tests keep theirs inside their nodes, but a failed run may leave a lab up).
test: deps lint unit-pypi
	PATH=$(CURDIR)/$(BIN):$$PATH $(RUN) pytest -q -rs tests/packaging
	PATH=$(CURDIR)/$(BIN):$$PATH $(RUN) pytest -q tests --ignore=tests/packaging

# docs/config.md's tables and docs/intent.schema.json, from the intent's declarations (a unit test checks them).
docs: venv
	$(RUN) tor_agent.config.docs

clean:
	rm -rf $(VENV) $(VENV_PYPI) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info

# The namespace lab (labs/lab) and the demo fabric.
-include labs/lab.mk
-include packaging/deb.mk
