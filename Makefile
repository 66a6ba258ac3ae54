# Two commands on a fresh machine: `make run` (the whole system, embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DB ?= sqlite
ROLE ?= backer
SUB ?= dev-user

.PHONY: install run test lint token migrate bench clean

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pip==26.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

install: $(INSTALLED)

## The whole system on the embedded default: SQLite files in ./data, the local Stripe server, the three
## services and the gateway on 127.0.0.1:8000. Ctrl-C stops everything.
run: install
	$(BIN)/python -m tools.stack run

## The whole test suite. DB=postgresql runs it against the PostgreSQL server on 127.0.0.1:5432.
test: install
	CROWDFUND_TEST_DATABASE=$(DB) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared gateway tools crowdfund_cli stripe_local bench services

## A development token: make token ROLE=operator SUB=alice
token: install
	@$(BIN)/python -m tools.token --role $(ROLE) --sub $(SUB)

migrate: install
	$(BIN)/python -m tools.migrate

## Benchmarks on PostgreSQL (127.0.0.1:5432): the launch rush, the gateway's overhead (wrk; nginx for
## comparison, installed with apt-get when missing), the batch refund. Results in bench/results/.
bench: install
	@command -v wrk >/dev/null && command -v nginx >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null) || \
		echo "wrk/nginx unavailable: the gateway scenario will be skipped"
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf data
