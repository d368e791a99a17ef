# Every target bootstraps .venv itself: a fresh machine needs only Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv system-deps lint test test-fast demo emulator bench clean

venv: $(STAMP)

$(STAMP): setup.py setup.cfg pyproject.toml tuning-api-emulator/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ./tuning-api-emulator -e ".[test,dev]"
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/bandit -c pyproject.toml -r airflow_provider_tuning tuning-api-emulator/tuning_api_emulator -q

## Debian packages the tests drive for real (Chromium, PostgreSQL, Redis); a no-op when present.
system-deps:
	bash scripts/install_system_deps.sh

## The README's test command: lint, type-check and the whole test suite.
test: lint system-deps
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -m "not e2e"

## Dependency audit: pip-audit on every package resolved in .venv (bandit runs in `make lint`,
## its exclusions justified in docs/security.md). pip-audit needs PyPI's per-release JSON API
## (https://pypi.org/pypi/<name>/<version>/json): when it is unreachable the target FAILS, because
## the audit did not run (--strict also fails on any package it could not look up).
.PHONY: audit
audit: venv
	@status=$$($(BIN)/python -c 'import importlib.metadata as m, requests; print(requests.get("https://pypi.org/pypi/pip/" + m.version("pip") + "/json", timeout=30).status_code)' 2>/dev/null || echo "no answer"); \
	if [ "$$status" != "200" ]; then \
		echo "make audit: FAILED - the dependency audit did not run: PyPI's vulnerability API (https://pypi.org/pypi/<name>/<version>/json, which pip-audit queries) answered '$$status' instead of 200. Run make audit where pypi.org is reachable." >&2; \
		exit 1; \
	fi
	$(BIN)/pip-audit --strict --skip-editable --progress-spinner off

## The README's main job: the Gemini example DAG end to end against the local emulator
## (make demo DAG=example_vertex_tuning runs the Vertex AI example).
demo: venv
	$(BIN)/python scripts/demo.py $(if $(DAG),--dag $(DAG),)

## Every benchmark in bench/ (see BENCHMARKS.md for how long they take); results go to BENCHMARKS.md by hand.
bench: venv
	$(BIN)/python bench/trigger_scale.py --runs 2
	$(BIN)/python bench/trigger_scale.py --runs 2 --n 10000 --baseline-n 0 --interval 30 --warmup 45 --window 90
	$(BIN)/python bench/big_job_poll.py --runs 2
	$(BIN)/python bench/batch_inference.py --runs 2
	$(BIN)/python bench/import_cost.py --repeat 5
	$(BIN)/python bench/hook_overhead.py --runs 2
	$(BIN)/python bench/ui_list.py --runs 2

emulator: venv
	$(BIN)/tuning-api-emulator --port 8085

clean:
	rm -rf $(VENV) .airflow-home .demo .pytest_cache .ruff_cache .mypy_cache
