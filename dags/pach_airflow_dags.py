"""Airflow DAGs from the Pachyderm pipeline specs (*.json, *.yaml, *.yml) under this folder.

pach_airflow's loader finds every spec here, compiles each pipeline on its own and registers one DAG
per pipeline (dag_id = pipeline name); a broken spec becomes a visible placeholder DAG.
"""

from pathlib import Path

from pach_airflow.loader import load_dags

load_dags(Path(__file__).resolve().parent, globals())
