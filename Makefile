# Two commands are all a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TEST_MYSQL_URL ?= mysql+asyncmy://root@127.0.0.1:3306/test

.PHONY: install run test lint types migrate bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its dev tools

run: install ## migrate, seed the demo tenant, start all four services and their workers
	$(BIN)/appointments migrate
	$(BIN)/appointments seed-demo
	$(BIN)/appointments run

test: install ## the whole suite on SQLite and MariaDB, with a real Redis (2 xdist workers)
	$(BIN)/pytest -q -p no:cacheprovider -n 2

lint: install
	$(BIN)/ruff check shared services tests alembic
	$(BIN)/ruff format --check shared services tests alembic/env.py
	$(BIN)/lint-imports

types: install
	$(BIN)/mypy shared services

migrate: install
	$(BIN)/appointments migrate

bench: install ## load and latency figures (not part of CI)
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
