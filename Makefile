PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
#: `make run` installs what the server needs; the tests, lint and benchmarks add `[dev]`.
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint bench bench-large clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e .
	touch $(STAMP)

$(DEV_STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(DEV_STAMP) $(STAMP)

run: $(STAMP)
	$(BIN)/auditstream serve

#: The API suite again with every test server's index on ClickHouse (embedded chdb). The
#: schemathesis fuzzer is left to the first pass: it probes request validation, which runs
#: before the store, and is the slowest test (~1.5 min).
CLICKHOUSE_API_TESTS ?= tests/api --deselect tests/api/test_fuzz.py::test_every_operation_survives_fuzzing

test: lint
	$(BIN)/pytest
	$(BIN)/pytest --store-backend clickhouse $(CLICKHOUSE_API_TESTS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: $(DEV_STAMP)
	$(BIN)/python -m bench.run --events 1000000
	$(BIN)/python -m bench.integrity --leaves 1000000
	$(BIN)/python -m bench.stream
	$(BIN)/python -m bench.push

bench-large: $(DEV_STAMP)
	$(BIN)/python -m bench.run --events 10000000

clean:
	rm -rf $(VENV) data bench/out
