# Two commands on a fresh machine with nothing but Python 3.11+:
#   make run    the whole stack in the foreground (Ctrl-C stops it)
#   make test   the full test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test chaos load bench bytecode lint format proto migrate clean

run: $(INSTALLED) bytecode
	$(PY) -m registration.devtools.launcher

test: $(INSTALLED) bytecode
	$(PY) -m pytest --durations=15

# The fault tests alone: processes killed, relays and databases down, a small load run.
chaos: $(INSTALLED) bytecode
	$(PY) -m pytest -m chaos --durations=15

# The load run at full size: N registrations through the real stack, every one accounted for.
load: $(INSTALLED) bytecode
	$(PY) -m bench.load --registrations $(or $(N),1000)

# The benchmark against bare Temporal: table, bench/results/*.json and *.png
# (docs/performance.md).
bench: $(INSTALLED) bytecode
	$(PY) -m bench

lint: $(INSTALLED)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports --no-cache

format: $(INSTALLED)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# Applies pending database migrations to DATABASE_URL (`make run` does it by itself).
migrate: $(INSTALLED)
	$(PY) -m registration.adapters.db.migrate upgrade

# Regenerates src/registration/v1/ from proto/; a test fails when the committed code is stale.
proto: $(INSTALLED)
	$(PY) scripts/gen_proto.py

# The worker's sandbox runs a workflow's module afresh for every workflow it starts: from
# bytecode on disk that is a load, from source a compile each time (PYTHONDONTWRITEBYTECODE,
# set on some machines and images, stops Python from writing the bytecode by itself).
bytecode: $(INSTALLED)
	$(PY) -m compileall -q src

# The venv is rebuilt whenever pyproject.toml changes.
$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
