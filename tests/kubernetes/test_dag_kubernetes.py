"""A spec in the dags folder with ``[pach_airflow] runner = kubernetes`` compiles into a DAG of plain
KubernetesPodOperators, and ``dag.test()`` runs it: ``plan`` in the S3 store, then one pod request per
datum set, built by the mapped KPO itself from our partial/expand kwargs with the task context.

No cluster can run here, so ``KubernetesPodOperator.execute`` is replaced by what a cluster would do
with the pod: in the first test it only records the request (``dag.test()`` gets as far as the pod); in
the second it runs that very pod with ``podman kube play``, so the whole DAG run (plan → pods → finish)
is real except for the Kubernetes API server.
"""

from __future__ import annotations

import uuid
from unittest import mock

import kubernetes_validate
import pytest

from pach_airflow.runners import kubernetes as kr

pytestmark = [pytest.mark.airflow, pytest.mark.s3, pytest.mark.slow]

SPEC = """\
pipeline: {name: shout}
transform:
  image: IMAGE
  cmd: [ptool, upper, /pfs/in, /pfs/out]
input:
  pfs: {repo: in, glob: "/*"}
resource_limits: {memory: 256Mi}
"""


@pytest.fixture
def k8s_dags(airflow_dags, s3_store_url, monkeypatch):
    """The test's dags folder, with the runner set to kubernetes and the store in S3."""
    monkeypatch.setenv("PACH_AIRFLOW_STORE", s3_store_url)
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__STORE", s3_store_url)
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__RUNNER", "kubernetes")
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__K8S_NAMESPACE", "pipelines")
    airflow_dags.store_url = s3_store_url
    store = airflow_dags.store()
    store.create_repo("in")
    with store.open_commit("in", "master") as c:
        c.put_file("/one.txt", b"one\n")
        c.put_file("/two/three.txt", b"three\n")
    return airflow_dags


def _run_with(dags, execute):
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    with mock.patch.object(KubernetesPodOperator, "execute", execute):
        return dags.run("shout")


def test_dag_compiles_and_reaches_the_pod_request(k8s_dags, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "never-in-a-pod-sentinel")
    k8s_dags.add_spec(SPEC.replace("IMAGE", "registry.example.com/shout:1.0"), "shout.yaml")
    bag = k8s_dags.dagbag()
    assert not bag.import_errors, bag.import_errors
    process = bag.dags["shout"].get_task("process")
    assert type(process).__name__ == "MappedOperator" and process.operator_name == "KubernetesPodOperator"

    pods = []

    def record(self, context):
        pods.append(kr.pod_manifest(self.build_pod_request_obj(context, dry_run=True)))

    _run_with(k8s_dags, record)
    assert len(pods) == 2, "one pod per datum set (two datums, one per set)"
    from pach_airflow import jobs

    (job,) = jobs.list_jobs(k8s_dags.store(), "shout")
    for pod in pods:
        kubernetes_validate.validate(pod, "1.33.0", strict=True)
        meta = pod["metadata"]
        assert meta["namespace"] == "pipelines"
        assert meta["annotations"]["pach-airflow.io/job"] == job.id
        assert meta["labels"]["dag_id"] == "shout" and meta["labels"]["task_id"] == "process"
        assert pod["spec"]["containers"][0]["image"] == "registry.example.com/shout:1.0"
        assert "never-in-a-pod-sentinel" not in str(pod)
    assert sorted(p["metadata"]["labels"]["map_index"] for p in pods) == ["0", "1"]
    assert sorted(p["metadata"]["annotations"]["pach-airflow.io/set"] for p in pods) == sorted(
        jobs.inspect_job(k8s_dags.store(), "shout", job.id).record["set_ids"])


def test_compiled_dag_serializes_with_its_pod_and_without_credentials(monkeypatch):
    """The scheduler and the UI see the serialized DAG: the pod (a V1Pod in ``partial``) must survive
    the round trip, and no S3 credential of the parsing process may end up in it."""
    import json

    from airflow.serialization.serialized_objects import DagSerialization

    from pach_airflow.compiler import compile_pipeline
    from pach_airflow.spec import parse_specs

    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__STORE", "s3://bucket/store")
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__RUNNER", "kubernetes")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-SENTINEL-ID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sentinel-secret")
    spec = parse_specs(SPEC.replace("IMAGE", "a/b:1") + "pod_patch: '[{\"op\": \"add\", \"path\": "
                       "\"/containers/0/workingDir\", \"value\": \"/w\"}]'\n")[0]
    data = DagSerialization.to_dict(compile_pipeline(spec))
    text = json.dumps(data)
    assert "AKIA-SENTINEL-ID" not in text and "sentinel-secret" not in text
    process = DagSerialization.from_dict(data).get_task("process")
    pod = process.partial_kwargs["full_pod_spec"]
    assert pod.spec.containers[0].working_dir == "/w"  # pod_patch applied, and kept through serialization
    assert pod.spec.containers[0].image == "a/b:1"


@pytest.mark.podman
def test_dag_run_with_pods_under_podman(k8s_dags, podman, pod_images, s3_server, monkeypatch):
    secret = podman.create_secret(f"pach-airflow-s3-{uuid.uuid4().hex[:8]}", s3_server.env())
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__WORKER_IMAGE", pod_images.worker)
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__S3_SECRET", secret)
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__IMAGE_PULL_POLICY", "Never")
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__K8S_HOST_NETWORK", "true")  # S3 is on the host's 127.0.0.1
    k8s_dags.add_spec(SPEC.replace("IMAGE", pod_images.user), "shout.yaml")
    runs = []

    def play(self, context):
        run = podman.play(kr.pod_manifest(self.build_pod_request_obj(context, dry_run=True)))
        runs.append(run)
        if not run.ok:
            raise RuntimeError(run.describe())

    try:
        dag_run = _run_with(k8s_dags, play)
    finally:
        podman.remove_secret(secret)
    assert len(runs) == 2 and all(r.ok for r in runs), [r.describe() for r in runs]
    assert str(dag_run.state) == "success"
    store = k8s_dags.store()
    head = store.inspect_commit("shout", "master")
    assert [f.path for f in store.walk("shout", head.id)] == ["/one.txt", "/two/three.txt"]
    assert store.read_file("shout", head.id, "/two/three.txt") == b"THREE\n"
