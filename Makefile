# The two commands a newcomer needs: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint docs docs-serve bench profile fuzz cluster screenshots clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the project's metadata or the lock changes; the install is editable, so code
# edits need none. Versions come from the lock file (`make lock` rewrites it from pyproject.toml).
$(STAMP): pyproject.toml requirements-dev.lock | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python -m scripts.run_dev

# On every core (pytest-xdist), one test file per worker at a time, so that the servers a module
# starts once stay in one worker. Compiled modules are kept even where PYTHONDONTWRITEBYTECODE is
# set: the tests start dozens of server processes, which would otherwise each compile the code.
TEST_WORKERS ?= auto
test: install
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy auth_server resource_server shared examples
	$(BIN)/lint-imports

# The documentation site (docs/, mkdocs.yml), built strictly into site/: a broken link or anchor,
# a page missing from the navigation, any warning fails the build. docs-serve rebuilds on every
# change and serves it on http://127.0.0.1:$(DOCS_PORT)/ (make run has 8000 and 8001). The theme's
# end-of-life notice is silenced here; docs/about-these-docs.md records it and the way out.
DOCS_PORT ?= 8100
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs
docs: install
	$(MKDOCS) build --strict --clean --site-dir site

docs-serve: install
	$(MKDOCS) serve --strict --dev-addr 127.0.0.1:$(DOCS_PORT)

# Both services, reference apps and wrk, side by side (issue 10). The full run (< 10 min) writes
# docs/benchmarks.md and docs/benchmarks.png; QUICK=1 (< 2 min) only prints. Installs wrk and
# starts the machine's PostgreSQL and Redis itself (scripts/bench_services.sh).
bench: install
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

# A pyinstrument profile under wrk load: TARGET=me|notes|healthz|refresh|bare
profile: install
	$(BIN)/python -m bench.profile $(or $(TARGET),me)

# docs/screenshots/*.png, the pictures of the web page and of the documentation site (README and
# docs), from the browser tests.
screenshots: install
	NOTES_AUTH_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/browser

# The long schema-fuzzing run (issue 9): cases tried, 5xx, conformance failures by check.
# FUZZ_ARGS: e.g. --seed 1 --examples 500 --verbose
fuzz: install
	$(BIN)/python -m scripts.fuzz $(FUZZ_ARGS)

# The scale-out topology (2 + 2 replicas behind nginx, own PostgreSQL and Redis) on loopback.
# ARGS: --faults (the fault test and its report) or --bench (1 vs 2 replicas)
cluster: install
	$(BIN)/python -m scripts.cluster $(ARGS)

# Pin every dependency: requirements.lock (what the image runs) and requirements-dev.lock (tests,
# lint, bench). Commit both.
LOCK_FLAGS := --quiet --strip-extras --no-emit-index-url --no-emit-find-links
lock: install
	$(BIN)/pip-compile $(LOCK_FLAGS) -o requirements.lock pyproject.toml
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra dev --extra bench --extra docs -o requirements-dev.lock pyproject.toml

clean:
	rm -rf $(VENV) var site .pytest_cache .mypy_cache .ruff_cache
