# Two commands for a newcomer: `make up` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint format bench clean

# uv resolves and installs much faster than pip; it comes from PyPI like everything else. Where
# it cannot be installed, pip does the same install, slower. Either way each package is printed
# as it goes in (bench/first_up.py times a fresh clone's install). Bytecode is compiled at
# install, as pip does: where PYTHONDONTWRITEBYTECODE is set (container images often set it)
# nothing would cache it later, and every start would compile the dependencies again.
$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Cat House needs Python 3.11 or newer"'
	@echo "==> creating $(VENV) and installing Cat House with its dependencies"
	$(PYTHON) -m venv $(VENV)
	@if $(BIN)/python -m pip install --quiet --disable-pip-version-check uv; then \
		$(BIN)/uv pip install --compile-bytecode --python $(BIN)/python -e '.[dev,bench]'; \
	else \
		echo "==> uv is not available; installing with pip (a few minutes)"; \
		$(BIN)/python -m pip install --progress-bar on -e '.[dev,bench]'; \
	fi
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/cathouse up --demo

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: $(STAMP)
	$(BIN)/python bench/first_up.py
	$(BIN)/python bench/access_log.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/auth.py
	$(BIN)/python bench/events.py
	$(BIN)/python bench/proxy.py
	$(BIN)/python bench/web.py
	$(BIN)/python bench/resp.py
	$(BIN)/python bench/upstream_client.py
	$(BIN)/python bench/canonical.py
	$(BIN)/python bench/caches.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
