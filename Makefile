# pin311 — the two commands: `make run` and `make test`. Each sets itself up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
# Debian packages the project needs: PostgreSQL 15 + PostGIS 3, GDAL's tools (the tests read our
# services with ogrinfo), Chromium for the browser tests, wrk for the HTTP benchmark, iproute2 for `ss`
# (the serve test and the benchmark read how connections fall on the workers).
APT_PACKAGES := postgresql-15 postgresql-15-postgis-3 postgresql-contrib gdal-bin chromium wrk iproute2

.PHONY: setup system venv db run lint test bench drill audit clean-db

setup: system venv db  ## everything `run` and `test` need

system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

db: venv
	@if [ -z "$$DATABASE_URL" ]; then $(BIN)/pin311 db start; fi
	$(BIN)/pin311 db upgrade
	$(BIN)/pin311 demo load --if-empty

run: setup
	$(BIN)/pin311 serve --port $(PORT)

lint: venv  ## flake8 with setup.cfg's [flake8] settings (also run by `make test`, first)
	$(BIN)/flake8 app gis bench tests data wsgi.py .ci

test: lint setup
	$(BIN)/python .ci/audit.py
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/run.py

drill: setup
	$(BIN)/python bench/drill.py

audit: venv  ## known vulnerabilities in the pinned dependencies (also run by `make test`)
	$(BIN)/python .ci/audit.py

clean-db:  ## stop and delete the local cluster
	-$(BIN)/pin311 db stop
	rm -rf var/postgres
