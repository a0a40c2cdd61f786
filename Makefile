# webtunnel-pt — common tasks. `make deps demo` (install everything, show tor bootstrapping
# through the PT) then `make test` is all a newcomer needs; see README.md.
SYSTEM_PYTHON ?= python3
## Debian's own python3 refuses `pip install` outside a virtual environment (PEP 668); with it,
## everything runs in .venv (made by `make install`). Other interpreters (pyenv, a venv you
## activated) are used as they are. `make PYTHON=...` overrides both.
## Both are expanded when a recipe runs, so `make deps demo` on a machine that gets its
## python3 from `system-deps` still decides correctly.
EXTERNALLY_MANAGED = $(shell $(SYSTEM_PYTHON) -c 'import os, sys, sysconfig; \
  print(int(sys.prefix == sys.base_prefix and \
  os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))))' 2>/dev/null)
PYTHON ?= $(if $(filter 1,$(EXTERNALLY_MANAGED)),.venv/bin/python,$(SYSTEM_PYTHON))
PIP ?= $(PYTHON) -m pip

.PHONY: install deps system-deps test unit integration e2e e2e-binary stress fuzz lint demo clean bench bench-tor binary binary-onedir

## System packages the tests use: tor and nginx (Debian), socat for benchmarks,
## microsocks, dante-server, tinyproxy and OpenSSH (ssh -D to a private sshd) as upstream
## proxies (TOR_PT_PROXY tests).
system-deps:
	@bash tools/system-deps.sh

## Install the package (editable) with its test and lint tools.
install:
	@if [ "$(PYTHON)" = .venv/bin/python ] && [ ! -x .venv/bin/python ]; then \
	  echo "$(SYSTEM_PYTHON) is externally managed (PEP 668): installing into .venv"; \
	  $(SYSTEM_PYTHON) -m venv .venv; fi
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test,lint]'

deps: system-deps install

test:
	$(PYTHON) -m pytest -q

unit:
	$(PYTHON) -m pytest -q tests/unit

integration:
	$(PYTHON) -m pytest -q tests/integration

e2e:
	$(PYTHON) -m pytest -q -m e2e tests/e2e

stress:
	$(PYTHON) -m pytest -q -s -m stress tests/stress

FUZZ_SECONDS ?= 30
FUZZ_TARGETS = args socks upgrade bridge env proxy_uri proxy cells relay_msgs circuit certs directory netdoc keycert consensus microdesc linkspec ntor_v3
fuzz:
	$(PIP) install -q atheris
	@mkdir -p build/fuzz; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  if $(PYTHON) -m fuzz.targets $$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	      -artifact_prefix=build/fuzz/$$t- >build/fuzz/$$t.log 2>&1; then \
	    grep -E "^stat::(number_of_executed_units|peak_rss_mb)" build/fuzz/$$t.log; \
	  else tail -40 build/fuzz/$$t.log; exit 1; fi; \
	done

lint:
	$(PYTHON) -m ruff check webtunnel_pt tests bench
	$(PYTHON) -m ruff format --check webtunnel_pt tests bench
	$(PYTHON) -m mypy

## Throughput, CPU per byte, set-up time, start-up and memory against the official Go client
## (when ../shared/peers/bin/webtunnel-client exists) and socat (docs/performance.md).
## `make bench QUICK=1`: a smaller run for development; BENCH_ARGS passes more (--relay-only, ...).
bench:
	$(PYTHON) -m bench.run $(if $(QUICK),--quick) $(BENCH_ARGS)

## The built-in Tor client (webtunnel-pt socks) against tor + the PT on the private Tor network
## of tests/e2e: bootstrap cold/warm, time to first byte, 50 MiB throughput, RSS
## (docs/builtin-mode.md). Needs tor, tor-gencert and nginx, like `make e2e`.
bench-tor:
	$(PYTHON) -m bench.tor_client --update-doc docs/builtin-mode.md $(BENCH_TOR_ARGS)

## One-file executable dist/webtunnel-pt (PyInstaller; `pip install -e '.[build]'`).
PYINSTALLER = $(PYTHON) -m PyInstaller --noconfirm --clean --log-level WARN --strip \
	--workpath build/pyinstaller --specpath build --name webtunnel-pt
binary:
	$(PIP) install -q -e '.[build]'
	$(PYINSTALLER) --onefile --distpath dist webtunnel_pt/__main__.py

## The e2e bootstrap with the binary as tor's PT instead of the installed package.
e2e-binary: binary
	WEBTUNNEL_PT="$(CURDIR)/dist/webtunnel-pt" $(PYTHON) -m pytest -q -m e2e tests/e2e \
	  -k test_bootstrap_and_fetch

## The same as a folder (dist/onedir/webtunnel-pt/webtunnel-pt): starts faster, see docs/performance.md.
binary-onedir:
	$(PIP) install -q -e '.[build]'
	$(PYINSTALLER) --onedir --distpath dist/onedir webtunnel_pt/__main__.py

demo:
	$(PYTHON) -m tests.e2e.demo

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
