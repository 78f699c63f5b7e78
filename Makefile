# Interchange: two commands on a fresh machine, `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export XDG_RUNTIME_DIR ?= /tmp/interchange-runtime-$(shell id -u)

.PHONY: demo test install migrate seed run worker beat db-stop lint bench clean

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)

migrate: install
	$(PY) manage.py migrate --no-input

seed: migrate
	$(PY) manage.py seed_demo

## demo: install, start the embedded PostgreSQL, migrate, load the demo district, run the portal
demo: migrate
	$(PY) manage.py collectstatic --no-input --verbosity 0
	$(PY) manage.py seed_demo
	@echo "Portal: http://127.0.0.1:8000/admin/  (Ctrl-C to stop; 'make db-stop' stops PostgreSQL)"
	$(PY) manage.py runserver 127.0.0.1:8000

## test: the whole suite, on DATABASE_URL when set, else on the embedded PostgreSQL
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

run: install
	$(PY) manage.py runserver 127.0.0.1:8000

worker: install
	$(VENV)/bin/celery -A portal worker --loglevel INFO

beat: install
	$(VENV)/bin/celery -A portal beat --loglevel INFO

db-stop: install
	$(PY) -c "from pathlib import Path; from portal.embedded_db import stop; print('stopped' if stop(Path('var').resolve()) else 'not running')"

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
