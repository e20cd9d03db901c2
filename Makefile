# The README's two commands are `make demo` and `make test`; the rest are for developers.
SHELL := /bin/bash
VENV := .venv/bin

.PHONY: setup demo demo-stop test lock bench golden lint

setup:
	scripts/setup.sh

demo:
	scripts/setup.sh
	scripts/demo.sh

test:
	scripts/setup.sh --test
	$(VENV)/ruff check pach_airflow tests bench dags plugins examples
	$(VENV)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lock:  ## regenerate requirements.lock from pyproject.toml within the Airflow pin list
	uv pip compile pyproject.toml --extra test -c constraints/airflow-freeze.txt \
	  --python-version 3.11 --no-header -o requirements.lock

golden:  ## rewrite tests/golden/*.plan.json from the current code; review the diff
	PACH_AIRFLOW_UPDATE_GOLDEN=1 $(VENV)/python -m pytest -q tests -k golden

lint:
	$(VENV)/ruff check pach_airflow tests bench dags plugins examples

bench:
	for b in bench/*.py; do echo "== $$b"; $(VENV)/python $$b || exit 1; done

demo-stop:
	@if [ -f .demo/airflow.pid ]; then kill -TERM -- -$$(cat .demo/airflow.pid) 2>/dev/null || true; \
	  sleep 5; kill -KILL -- -$$(cat .demo/airflow.pid) 2>/dev/null || true; rm -f .demo/airflow.pid; \
	  echo "Airflow stopped; the data stays in .demo/"; else echo "no demo running"; fi
