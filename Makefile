# lockhook: `make run` (service), `make test` (suite), `make demo`, `make bench`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test demo bench lint clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "lockhook needs Python >= 3.11 ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install          ## web + worker (+ an embedded Redis when none answers)
	$(BIN)/lockhook dev

test: install         ## install test dependencies (redis-server, node fake, chromium) and run the suite
	bash scripts/test-deps.sh
	$(BIN)/lint-imports
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

demo: install
	$(BIN)/lockhook demo

bench: install        ## every benchmark beside its baselines; BENCH_ARGS="--quick" or "--only notifications"
	bash scripts/test-deps.sh bench
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/run.py $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) node_modules .pytest_cache .lockhook test-artifacts
