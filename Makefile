# The README's two commands are `make demo` and `make test`; the rest are for developers.
SHELL := /bin/bash
VENV := .venv/bin

.PHONY: setup demo test lock bench golden lint

setup:
	scripts/setup.sh

demo:
	scripts/setup.sh
	scripts/demo.sh

test:
	scripts/setup.sh --test
	$(VENV)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lock:  ## regenerate requirements.lock from pyproject.toml within the Airflow pin list
	uv pip compile pyproject.toml --extra test -c constraints/airflow-freeze.txt \
	  --python-version 3.11 --no-header -o requirements.lock

golden:  ## rewrite tests/golden/*.plan.json from the current code; review the diff
	PACH_AIRFLOW_UPDATE_GOLDEN=1 $(VENV)/python -m pytest -q tests -k golden

lint:
	$(VENV)/ruff check pach_airflow tests bench dags plugins

bench:
	for b in bench/*.py; do echo "== $$b"; $(VENV)/python $$b || exit 1; done
