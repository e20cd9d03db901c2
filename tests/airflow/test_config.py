"""The ``[pach_airflow]`` section and the S3 connection, read the way Airflow users set them: env vars
``AIRFLOW__PACH_AIRFLOW__*`` and an ``AIRFLOW_CONN_*`` connection; and the DAG the kubernetes runner
setting gives."""

from __future__ import annotations

import json

import pytest

from pach_airflow import airflow_config
from pach_airflow.errors import SpecError

pytestmark = pytest.mark.airflow


def test_defaults_and_env(monkeypatch):
    monkeypatch.delenv("AIRFLOW__PACH_AIRFLOW__STORE", raising=False)
    monkeypatch.setenv("PACH_AIRFLOW_STORE", "file:///from/env")
    assert airflow_config.store_url() == "file:///from/env"
    assert airflow_config.runner() == "local"
    assert airflow_config.poll_interval() == airflow_config.DEFAULT_POLL_INTERVAL
    assert airflow_config.max_sets() == 1024
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__STORE", "s3://bucket/prefix")
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__RUNNER", "Kubernetes")
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__POLL_INTERVAL", "0.5")
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__MAX_SETS", "5000")
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "2048")
    assert airflow_config.store_url() == "s3://bucket/prefix"
    assert airflow_config.runner() == "kubernetes"
    assert airflow_config.poll_interval() == 0.5
    assert airflow_config.max_sets() == 2048  # never more than Airflow maps
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__RUNNER", "docker")
    with pytest.raises(SpecError, match="runner: 'docker' is not a runner; use one of local, kubernetes"):
        airflow_config.runner()


def test_aws_connection_becomes_boto3_env(monkeypatch):
    conn = {"conn_type": "aws", "login": "AKIA", "password": "secret",
            "extra": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_PACH_S3", json.dumps(conn))
    env = airflow_config.aws_connection_env("pach_s3")
    assert env == {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "secret",
                   "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_DEFAULT_REGION": "eu-west-1"}
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__AWS_CONN_ID", "pach_s3")
    for key in env:
        monkeypatch.delenv(key, raising=False)
    airflow_config.apply_aws_connection()
    import os

    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"


def test_kubernetes_runner_dag_shape(airflow_dags, monkeypatch):
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__RUNNER", "kubernetes")
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__STORE", "s3://bucket/prefix")
    airflow_dags.add_example("opencv/edges.yaml")
    bag = airflow_dags.dagbag()
    dag = bag.dags["edges"]
    assert "invalid-spec" not in dag.tags, dag.doc_md
    process = dag.get_task("process")
    assert process.operator_class.__name__ == "KubernetesPodOperator"
    assert dag.get_task("pod_args").downstream_task_ids == {"process"}
    assert "pach-airflow/datums" in process.partial_kwargs["map_index_template"]


def test_kubernetes_runner_without_s3_is_a_visible_error(airflow_dags, monkeypatch):
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__RUNNER", "kubernetes")
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__STORE", "file:///tmp/nope")
    airflow_dags.add_example("opencv/edges.yaml")
    dag = airflow_dags.dagbag().dags["edges"]
    assert dag.tags == {"invalid-spec"}
    assert dag.task_ids == ["invalid_spec"]
    assert "s3://" in dag.doc_md
