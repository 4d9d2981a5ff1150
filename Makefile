# gridinfo: set-up, run and test.  `make run` and `make test` work on a fresh Debian machine
# with Python 3.11; each bootstraps the virtualenv in .venv first.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Debian packages the tests use: OpenLDAP's clients and server (interop and differential
# tests), Debian's GLUE schema files (we must load them).
TEST_DEBS := ldap-utils slapd glue-schema
TEST_CMDS := /usr/bin/ldapsearch /usr/sbin/slapd /etc/ldap/schema/Glue-CORE.schema

.PHONY: run test venv test-deps bench clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(STAMP)
	$(BIN)/python -m gridinfo.cli.demo

test-deps:
	@missing=0; for f in $(TEST_CMDS); do [ -e $$f ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  echo "installing Debian packages: $(TEST_DEBS)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEST_DEBS); \
	fi

test: $(STAMP) test-deps
	$(BIN)/python -m pytest -q

bench: $(STAMP) test-deps
	$(BIN)/python tools/bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
