# Two commands for a newcomer: `make demo` (embedded: SQLite, no broker) and `make test` (PostgreSQL + Redis).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Names derived from the checkout's path, so that two checkouts (or a CI clone beside a work tree) on one machine
# never share a test database or a Redis db: pytest-django creates test_<name>; the Redis db (1-15) is the first from
# the same hash that no other checkout has claimed (bin/test-redis-db).
RUN_ID := $(shell printf '%s' "$(CURDIR)" | cksum | cut -d' ' -f1)
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/notifier_$(RUN_ID)
TEST_REDIS_URL ?= redis://127.0.0.1:6379/$(shell bin/test-redis-db $(RUN_ID))

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
