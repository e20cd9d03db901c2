"""Test set-up shared by every test.

Fixtures live in ``tests/fixtures/<area>.py`` (one module per area) and are loaded here. Airflow reads
its configuration from the environment when first imported, so the environment is fixed here, before
any test module imports Airflow.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent

_home = pathlib.Path(tempfile.mkdtemp(prefix="pach-airflow-test-home-"))
os.environ.setdefault("AIRFLOW_HOME", str(_home / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "plugins"))
# Tests never touch a developer's real store: each test that needs one gets a fresh one.
os.environ["PACH_AIRFLOW_STORE"] = "file://" + str(_home / "default-store")
os.environ.setdefault("PACH_AIRFLOW_DAGS_FOLDER", str(_home / "dags"))

_FIXTURE_MODULES = ("cli", "s3", "stores", "airflow", "podman")
pytest_plugins = [
    f"tests.fixtures.{m}" for m in _FIXTURE_MODULES if importlib.util.find_spec(f"tests.fixtures.{m}")
]
