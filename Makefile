# Quick start: `make demo` then `make test`, on Linux or macOS with Python 3.11+.
# the first interpreter that runs and is 3.11+ (pyenv shims may exist but not run)
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3 python; do $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: setup demo test test-deps bench templates clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "xl_addin needs Python 3.11 or newer: install it, or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: setup
	$(BIN)/lx-addin demo

test: setup
	@$(BIN)/python tests/sysdeps.py
	$(BIN)/python -m pytest

# the system packages the tests need, on Debian/Ubuntu (macOS: see `python3 tests/sysdeps.py`)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
test-deps:
	@pkgs="$$($(or $(PYTHON),python3) tests/sysdeps.py --debian)"; \
	if [ -z "$$pkgs" ]; then echo "System packages for the tests: all present."; \
	else echo "Installing: $$pkgs"; $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y --no-install-recommends $$pkgs; fi

bench: setup
	$(BIN)/python bench/fetch.py
	$(BIN)/python bench/udfs.py
	$(BIN)/python bench/refresh.py
	$(BIN)/python bench/history.py
	$(BIN)/python bench/trend.py
	$(BIN)/python bench/faults.py

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache

templates: setup
	$(BIN)/python -m xl_addin.templates templates
