PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-large clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/auditstream serve

test: lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.run --events 1000000
	$(BIN)/python -m bench.integrity --leaves 1000000
	$(BIN)/python -m bench.stream
	$(BIN)/python -m bench.push

bench-large: $(STAMP)
	$(BIN)/python -m bench.run --events 10000000

clean:
	rm -rf $(VENV) data bench/out
