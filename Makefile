# gridinfo: set-up, run and test.  `make run` and `make test` work on a fresh Debian machine
# with Python 3.11 (as root, for apt-get); each bootstraps the virtualenv in .venv first.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BASE_STAMP := $(VENV)/.base-stamp
TEST_STAMP := $(VENV)/.test-stamp

# Debian packages the tests use: OpenLDAP's clients and server (interop, differential and GIIS
# child tests), Debian's GLUE schema files (we must load them), libvirt's headers to build the
# libvirt Python bindings (hypervisor provider, test:/// driver), a real Slurm and a real Grid
# Engine (batch provider), the network provider's probes, OpenLDAP's and Cyrus SASL's headers to
# build python-ldap (a TLS interop client in tests/integration/test_tls.py), and EGI's BDII (slapd
# config, schema and bdii-update: the real BDII of tests/integration/test_real_bdii.py).
TEST_DEBS := ldap-utils slapd glue-schema libvirt-dev pkg-config slurm-wlm iputils-ping traceroute iperf3 \
             libldap2-dev libsasl2-dev bdii gridengine-master gridengine-exec gridengine-client chromium chromium-driver
TEST_FILES := /usr/bin/ldapsearch /usr/sbin/slapd /etc/ldap/schema/Glue-CORE.schema \
              /usr/include/libvirt/libvirt.h /usr/bin/pkg-config /usr/sbin/slurmctld \
              /usr/bin/ping /usr/bin/traceroute /usr/bin/iperf3 /usr/include/ldap.h /usr/include/sasl/sasl.h \
              /usr/sbin/bdii-update /usr/sbin/sge_qmaster /usr/sbin/sge_execd /usr/bin/qstat \
              /usr/bin/chromium /usr/bin/chromedriver

# The hot modules compiled with Cython, in place (tools/gridinfo_dev/compiled.py): rebuilt when a
# source changes; a module edited since the last build runs from its source until then.  The
# unit and protocol tests of those modules run a second time in pure Python (PURE_TESTS).
COMPILED_STAMP := $(VENV)/.compiled-stamp
SOURCES := $(shell find gridinfo -name '*.py')
PURE_TESTS := tests/directory tests/ldap tests/test_ber.py tests/test_compiled.py tests/gris tests/giis \
              tests/integration/test_differential_slapd.py tests/integration/test_directory_socket.py \
              tests/integration/test_hardening.py tests/integration/test_wire_clients.py tests/integration/test_fuzz.py

.PHONY: run test venv compiled test-deps bench clean

venv: $(BASE_STAMP)

$(BASE_STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(BASE_STAMP)
	$(MAKE) --no-print-directory test-deps
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

compiled: $(COMPILED_STAMP)

$(COMPILED_STAMP): $(BASE_STAMP) tools/build-compiled tools/gridinfo_dev/compiled.py $(SOURCES)
	$(BIN)/pip install --quiet 'Cython>=3.0,<4' setuptools
	$(BIN)/python tools/build-compiled
	touch $@

# without a C compiler gridinfo runs as it is written, in pure Python
run: $(BASE_STAMP)
	@$(MAKE) --no-print-directory compiled || echo "gridinfo: the compiled modules were not built: running pure Python"
	$(BIN)/python -m gridinfo.cli.demo

test-deps:
	@missing=0; for f in $(TEST_FILES); do [ -e $$f ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  echo "installing Debian packages: $(TEST_DEBS)"; \
	  echo "gridengine-client shared/gridenginemaster string $$(hostname)" | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEST_DEBS); \
	fi

test: test-deps $(TEST_STAMP) $(COMPILED_STAMP)
	GRIDINFO_REQUIRE_COMPILED=1 $(BIN)/python -m pytest -q
	GRIDINFO_PURE_PYTHON=1 $(BIN)/python -m pytest -q $(PURE_TESTS)

# make bench BENCH_ARGS=--quick: a smoke run; docs/performance.md says how the figures were taken
BENCH_ARGS ?= --sizes 1000,10000,100000
bench: $(TEST_STAMP) $(COMPILED_STAMP)
	$(BIN)/python tools/bench $(BENCH_ARGS)

clean:
	find gridinfo -name '*.so' -delete
	rm -rf $(VENV) build *.egg-info .pytest_cache
