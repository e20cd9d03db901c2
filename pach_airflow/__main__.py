from pach_airflow.cli import run

run()
