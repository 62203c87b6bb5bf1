# bluegreen — everything a fresh machine needs is installed by these targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SCENARIO ?= happy
PROFILE ?= fast
export AIRFLOW_HOME ?= $(CURDIR)/.airflow

.PHONY: install demo test chaos lint mutate bench airflow sandbox-up sandbox-down clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	# The editable build leaves the package's metadata in the checkout too. `python -m airflow` run from
	# here would then find the package twice and register its Blue/Green plugin twice (an import error).
	rm -rf airflow_provider_bluegreen.egg-info
	touch $@

demo: install
	$(PY) -m bluegreen_provider.demo --scenario $(SCENARIO) --profile $(PROFILE)

# Unit and integration tests share nothing but the machine: two workers, a file at a time each. The
# end-to-end and reliability tests start whole Airflow stacks and soak in real time: one at a time.
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q -p no:cacheprovider -n 2 --dist loadfile tests/unit tests/integration
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/e2e tests/chaos

# The reliability suite (tests/chaos), slow cases included; its table is tests/chaos/RESULTS.md.
# `make test` runs the fast cases (slow ones run only when pytest is pointed at tests/chaos).
chaos: install
	BLUEGREEN_CHAOS_RESULTS=1 $(VENV)/bin/pytest -q -p no:cacheprovider tests/chaos; status=$$?; \
	cat tests/chaos/RESULTS.md; exit $$status

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check . || true

# Mutation testing of bluegreen_provider/state.py ([tool.mutmut] in pyproject.toml; equivalent
# mutants are listed in tests/unit/state/MUTANTS.md). Slow: not part of `make test`.
mutate: install
	$(VENV)/bin/mutmut run
	$(VENV)/bin/mutmut results

bench: install
	$(PY) -m bench

airflow: install
	$(PY) -m bluegreen_provider.demo --airflow --profile $(PROFILE)

sandbox-up: install
	$(PY) -m bluegreen_provider.cli sandbox up

sandbox-down: install
	$(PY) -m bluegreen_provider.cli sandbox down

clean:
	-$(PY) -m bluegreen_provider.cli sandbox down
	rm -rf .airflow .sandbox .pytest_cache
