# Two commands for a newcomer: `make demo` (embedded: SQLite, no broker) and `make test` (PostgreSQL + Redis).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/notifier
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: venv demo serve test lint typecheck migrations-check pytest clean-demo

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/python manage.py demo

clean-demo:
	rm -rf var/notifier.sqlite3 var/sent_notification

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy .

migrations-check: venv
	NOTIFIER_VAR_DIR=$$(mktemp -d) $(BIN)/python manage.py makemigrations --check --dry-run

pytest: venv
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck migrations-check pytest

# The whole service locally without Docker (web, worker, beat, Flower) against PostgreSQL and Redis; Ctrl-C stops all.
serve: venv
	bin/serve
