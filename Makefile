# spatialvlm: `make demo` and `make test` work on a fresh machine (Debian/Ubuntu, Python 3.11).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
OUT    ?= out/demo
N      ?= 24

.PHONY: demo test test-slow bench system-deps install clean lint

# System packages: open3d needs libusb-1.0 and libgomp; the viewer's browser test drives Debian's chromium.
# Installed only when missing (needs root or sudo).
SYS_PKGS := libusb-1.0-0 libgomp1 chromium chromium-driver
system-deps:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0' || ! command -v chromium >/dev/null \
	    || ! command -v chromedriver >/dev/null; then \
	  echo ">> installing system packages ($(SYS_PKGS))"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(SYS_PKGS) >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[ml,scale,viz,dev]'
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
