# Two commands are all a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-runtime
export TEST_MYSQL_URL ?= mysql+asyncmy://root@127.0.0.1:3306/test

.PHONY: install runtime run info test lint types migrate bench faults clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# `make run` needs the runtime dependencies only (no test, lint or browser tools); a .venv that
# already has the dev tools (make install) has them too.
$(RUN_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $(RUN_STAMP)

install: $(STAMP) ## create .venv and install the project with its dev tools

runtime: $(RUN_STAMP) ## create .venv with the runtime dependencies only

run: runtime ## migrate, seed the demo tenant, start all four services and their workers
	$(BIN)/appointments migrate
	$(BIN)/appointments seed-demo
	$(BIN)/appointments run

info: runtime ## print the API key, the docs URLs, the ops page and the mail page again
	$(BIN)/appointments info

test: install ## the whole suite on SQLite and MariaDB, with a real Redis (2 xdist workers)
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --durations=15

lint: install
	$(BIN)/ruff check shared services tools tests alembic
	$(BIN)/ruff format --check shared services tools tests alembic/env.py
	$(BIN)/lint-imports

types: install
	$(BIN)/mypy shared services tools

migrate: install
	$(BIN)/appointments migrate

bench: install ## load and latency figures (not part of CI)
	$(BIN)/python -m tests.bench

FAULT_TESTS := tests/cli/test_supervisor.py tests/faults/test_redis_outage.py \
	tests/faults/test_database_outage.py tests/faults/test_sigterm_burst.py \
	tests/faults/test_sqlite_locked.py
faults: install ## the fault drill (kill -9, outages, SIGTERM under load, both backends): the table of issue 14
	rm -f var/faults.jsonl
	mkdir -p var
	FAULT_REPORT=$(CURDIR)/var/faults.jsonl $(BIN)/pytest -q -p no:cacheprovider -p no:xdist \
		$(FAULT_TESTS); status=$$?; \
	$(BIN)/python -m tests.faults.report var/faults.jsonl; exit $$status

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
