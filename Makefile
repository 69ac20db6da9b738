# spatialvlm: `make demo` and `make test` work on a fresh machine (Debian/Ubuntu, Python 3.11).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
OUT    ?= out/demo
N      ?= 24

.PHONY: demo test test-slow bench system-deps install clean lint

# System libraries: open3d needs libusb-1.0 and libgomp. Installed only when missing (needs root or sudo).
system-deps:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then \
	  echo ">> installing system packages (libusb-1.0-0, libgomp1)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libusb-1.0-0 libgomp1 >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[ml,scale,dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spatialvlm demo --out $(OUT) -n $(N)

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

bench: $(STAMP)
	$(PY) scripts/bench_foundation.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests

clean:
	rm -rf out .pytest_cache
