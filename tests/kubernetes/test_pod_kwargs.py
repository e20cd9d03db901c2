"""Pods from pure functions: spec + datum set → KubernetesPodOperator kwargs → the V1Pod KPO submits.

Every pod here is the one a plain ``KubernetesPodOperator`` builds from our kwargs
(``build_pod_request_obj(dry_run=True)``) and is validated against the Kubernetes 1.33 API schema
(``kubernetes-validate``, strict: unknown fields fail too).
"""

from __future__ import annotations

import json
import re

import kubernetes_validate
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pach_airflow.errors import RunnerError, SpecError
from pach_airflow.runners import kubernetes as kr

K8S_VERSION = "1.33.0"
JOB = "0123456789abcdef0123456789abcdef"
CONFIG = kr.KubernetesConfig(store="s3://bucket/store", namespace="pipelines",
                             worker_image="registry.example.com/pach-airflow-worker:0.1.0",
                             service_account="pach-worker")

FULL_SPEC = {
    "pipeline": {"name": "edges"},
    "metadata": {"labels": {"team": "vision"}, "annotations": {"owner": "ana"}},
    "transform": {
        "image": "pachyderm/opencv:1.0",
        "cmd": ["python3", "/edges.py"],
        "env": {"MODE": "fast", "TEMPLATE_LOOKALIKE": "{{ not_jinja }}"},
        "secrets": [{"name": "db", "key": "password", "env_var": "DB_PASSWORD"},
                    {"name": "tls", "mount_path": "/etc/tls"}],
        "image_pull_secrets": ["regcred"],
        "user": "1000",
        "memory_volume": True,
    },
    "input": {"pfs": {"repo": "images", "glob": "/*", "name": "images", "branch": "master"}},
    "resource_requests": {"cpu": 0.5, "memory": "256Mi", "disk": "1Gi"},
    "resource_limits": {"cpu": 2, "memory": "1Gi", "gpu": {"type": "nvidia.com/gpu", "number": 1}},
    "sidecar_resource_limits": {"cpu": 1, "memory": "512Mi"},
    "scheduling_spec": {"node_selector": {"pool": "gpu"}, "priority_class_name": "batch-high"},
    "tolerations": [{"key": "dedicated", "operator": "EQUAL", "value": "gpu", "effect": "NO_SCHEDULE"},
                    {"key": "spot", "operator": "EXISTS", "toleration_seconds": 60, "effect": "NO_EXECUTE"}],
    "job_timeout": "3600s",
}


def minimal(name="edges", **extra) -> dict:
    spec = {"pipeline": {"name": name}, "transform": {"image": "alpine:3.20", "cmd": ["sh"]},
            "input": {"pfs": {"repo": "images", "glob": "/*"}}}
    spec.update(extra)
    return spec


def manifest(spec, set_id="0", config=CONFIG, job=JOB) -> dict:
    pod = kr.pod_request(spec, pipeline=spec["pipeline"]["name"], job_id=job, set_id=set_id, config=config)
    body = kr.pod_manifest(pod)
    kubernetes_validate.validate(body, K8S_VERSION, strict=True)
    return body


def container(body: dict, name: str) -> dict:
    for c in body["spec"].get("initContainers", []) + body["spec"]["containers"]:
        if c["name"] == name:
            return c
    raise KeyError(name)


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env") or []}


# ---------------------------------------------------------------------------------------------- pod


def test_full_spec_pod_is_valid_and_shaped_like_pachyderms():
    body = manifest(FULL_SPEC, set_id="3")
    spec = body["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["stage"]
    assert [c["name"] for c in spec["containers"]] == ["base", "upload"]
    user = container(body, "base")
    assert user["image"] == "pachyderm/opencv:1.0"  # unchanged
    assert user["command"] == ["/pach/bin/busybox", "sh", "/pach/shim.sh"]
    assert {m["mountPath"] for m in user["volumeMounts"]} == {"/pfs", "/pach", "/etc/tls"}
    assert container(body, "stage")["image"] == container(body, "upload")["image"] == CONFIG.worker_image
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["pfs"] == {"name": "pfs", "emptyDir": {}}
    assert vols["pach"]["emptyDir"] == {"medium": "Memory"}  # transform.memory_volume
    assert spec["restartPolicy"] == "Never"
    assert spec["shareProcessNamespace"] is True
    assert spec["serviceAccountName"] == "pach-worker"
    assert spec["automountServiceAccountToken"] is False
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"pool": "gpu"}
    assert spec["priorityClassName"] == "batch-high"
    assert spec["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
    ]
    assert spec["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000}
    assert spec["activeDeadlineSeconds"] == 3600
    assert body["metadata"]["namespace"] == "pipelines"


def test_resources_follow_pachyderm():
    body = manifest(FULL_SPEC)
    user = container(body, "base")["resources"]
    assert user["requests"] == {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "1Gi"}
    assert user["limits"] == {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"}
    stage = container(body, "stage")["resources"]
    # the init container may use what the user container may (never at the same time), but no GPU
    assert stage["requests"] == user["requests"]
    assert stage["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert container(body, "upload")["resources"] == {"limits": {"cpu": "1", "memory": "512Mi"}}
    # no limits for the sidecar: Pachyderm's default requests
    assert container(manifest(minimal()), "upload")["resources"] == {"requests": {"cpu": "0", "memory": "64M"}}


def test_gpu_type_and_requests_only_gpu_become_limits():
    body = manifest(minimal(resource_requests={"gpu": {"type": "amd.com/gpu", "number": 2}, "memory": "2G"}))
    res = container(body, "base")["resources"]
    assert res["requests"] == {"memory": "2G", "amd.com/gpu": "2"}
    assert res["limits"] == {"amd.com/gpu": "2"}  # Kubernetes takes extended resources only as limits


def test_pachyderm_default_requests_when_spec_has_none():
    res = container(manifest(minimal()), "base")["resources"]
    assert res == {"requests": {"cpu": "1", "memory": "256Mi", "ephemeral-storage": "1Gi"}}


@pytest.mark.parametrize("cpu,qty", [(1, "1"), (0.25, "250m"), (1.5, "1500m"), ("0.1", "100m"), ("500m", "500m")])
def test_cpu_quantities(cpu, qty):
    assert kr.resource_list({"r": {"cpu": cpu}}, "r") == {"cpu": qty}


def test_bad_quantities_name_the_field():
    with pytest.raises(SpecError, match=r"pipeline edges: resource_limits.memory: '1 gig' is not a Kubernetes quantity"):
        kr.kpo_partial_kwargs(minimal(resource_limits={"memory": "1 gig"}), CONFIG)
    with pytest.raises(SpecError, match=r"resource_requests.cpu"):
        kr.kpo_partial_kwargs(minimal(resource_requests={"cpu": "lots"}), CONFIG)


def test_user_secrets_are_references():
    body = manifest(FULL_SPEC)
    env = env_of(container(body, "base"))
    assert env["DB_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "db", "key": "password"}}
    tls = [v for v in body["spec"]["volumes"] if v.get("secret")]
    assert tls == [{"name": "secret-tls", "secret": {"secretName": "tls"}}]
    with pytest.raises(SpecError, match=r"transform.secrets\[0\].key: required with env_var"):
        kr.kpo_partial_kwargs(minimal(transform={"image": "a", "cmd": ["b"],
                                                 "secrets": [{"name": "db", "env_var": "X"}]}), CONFIG)


def test_transform_env_is_not_templated_by_airflow():
    # transform.env sits in full_pod_spec (not a template field), so "{{" stays as the user wrote it
    env = env_of(container(manifest(FULL_SPEC), "base"))
    assert env["TEMPLATE_LOOKALIKE"]["value"] == "{{ not_jinja }}"
    assert "full_pod_spec" not in __import__(
        "airflow.providers.cncf.kubernetes.operators.pod", fromlist=["x"]).KubernetesPodOperator.template_fields


def test_transform_user_must_be_numeric():
    with pytest.raises(SpecError, match=r"transform.user: 'alice'.*numeric uid"):
        kr.kpo_partial_kwargs(minimal(transform={"image": "a", "cmd": ["b"], "user": "alice"}), CONFIG)
    sc = manifest(minimal(transform={"image": "a", "cmd": ["b"], "user": "1000:2000"}))["spec"]["securityContext"]
    assert sc == {"runAsUser": 1000, "runAsGroup": 2000, "fsGroup": 2000}


# ------------------------------------------------------------------------------------- S3 credentials


def test_s3_credentials_only_by_secret_reference(monkeypatch):
    # Credentials in the scheduler's environment must never be copied into the pod or the kwargs.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASENTINEL123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sentinel-secret-value")
    config = kr.KubernetesConfig(store="s3://bucket/store", s3_secret="my-s3")
    body = manifest(FULL_SPEC, config=config)
    text = json.dumps(body)
    assert "AKIASENTINEL123" not in text and "sentinel-secret-value" not in text
    for name in ("stage", "upload"):
        env = env_of(container(body, name))
        assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "my-s3", "key": "AWS_ACCESS_KEY_ID"}
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "my-s3"
        assert "value" not in env["AWS_SECRET_ACCESS_KEY"]
        assert env["PACH_AIRFLOW_STORE"]["value"] == "s3://bucket/store"
    # the user's code gets no store credentials (Pachyderm gives them only for s3 inputs)
    assert not [n for n in env_of(container(body, "base")) if n.startswith("AWS_")]
    expand = kr.kpo_expand_kwargs("edges", JOB, "0", config)
    assert json.loads(json.dumps(expand)) == expand  # plain JSON: travels through XCom


def test_endpoint_may_be_plain_config():
    config = kr.KubernetesConfig(store="s3://b/p", s3_endpoint_url="http://minio:9000")
    env = env_of(container(manifest(minimal(), config=config), "stage"))
    assert env["AWS_ENDPOINT_URL"] == {"name": "AWS_ENDPOINT_URL", "value": "http://minio:9000"}


def test_kubernetes_runner_needs_an_s3_store():
    with pytest.raises(RunnerError, match=r"\[pach_airflow\] store: 'file:///tmp/x'.*s3://"):
        kr.kpo_partial_kwargs(minimal(), kr.KubernetesConfig(store="file:///tmp/x"))


def test_config_from_airflow_section(monkeypatch):
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__STORE", "s3://data/pach")
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__K8S_NAMESPACE", "ml")
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__WORKER_IMAGE", "reg/pach-airflow-worker:1.2")
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__S3_SECRET", "s3-creds")
    monkeypatch.setenv("AIRFLOW__PACH_AIRFLOW__WORKER_PULL_SECRETS", "a, b")
    cfg = kr.config_from_airflow()
    assert (cfg.store, cfg.namespace, cfg.worker_image, cfg.s3_secret) == (
        "s3://data/pach", "ml", "reg/pach-airflow-worker:1.2", "s3-creds")
    assert cfg.worker_pull_secrets == ("a", "b")


# ------------------------------------------------------------------------------- pod_spec / pod_patch


def test_pod_patch_and_pod_spec_apply_last_to_the_podspec_as_in_pachyderm():
    patch = [
        {"op": "add", "path": "/containers/0/securityContext", "value": {"allowPrivilegeEscalation": False}},
        {"op": "replace", "path": "/containers/1/resources/limits/memory", "value": "2Gi"},
        {"op": "add", "path": "/volumes/-", "value": {"name": "cache", "emptyDir": {}}},
        {"op": "add", "path": "/containers/0/volumeMounts/-", "value": {"name": "cache", "mountPath": "/cache"}},
    ]
    spec = dict(FULL_SPEC, pod_patch=json.dumps(patch),
                pod_spec=json.dumps({"terminationGracePeriodSeconds": 7, "nodeSelector": {"pool": None, "zone": "a"}}))
    body = manifest(spec)
    assert container(body, "base")["securityContext"] == {"allowPrivilegeEscalation": False}
    assert container(body, "upload")["resources"]["limits"]["memory"] == "2Gi"
    assert {"name": "cache", "mountPath": "/cache"} in container(body, "base")["volumeMounts"]
    assert body["spec"]["terminationGracePeriodSeconds"] == 7
    assert body["spec"]["nodeSelector"] == {"zone": "a"}  # JSON merge patch: null removes


def test_pod_patch_errors_name_the_field():
    with pytest.raises(SpecError, match=r"pipeline edges: pod_patch: not valid JSON"):
        kr.kpo_partial_kwargs(minimal(pod_patch="[{"), CONFIG)
    with pytest.raises(SpecError, match=r"pod_patch: does not apply"):
        kr.kpo_partial_kwargs(minimal(pod_patch='[{"op": "replace", "path": "/containers/9/image", "value": "x"}]'),
                              CONFIG)
    with pytest.raises(SpecError, match=r"pod_spec: must be a JSON object"):
        kr.kpo_partial_kwargs(minimal(pod_spec="[1]"), CONFIG)


# ------------------------------------------------------------------------------------ names, labels

DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=120), st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
       st.text(min_size=1, max_size=12))
def test_names_and_labels_are_valid_whatever_the_pipeline_is_called(pipeline, job, set_id):
    name = kr.pod_name(pipeline, job, set_id)
    assert DNS_1123.match(name) and len(name) <= kr.POD_NAME_MAX
    for value in kr.pod_labels(pipeline, job, set_id).values():
        assert LABEL_VALUE.match(value) and len(value) <= 63


def test_long_names_keep_a_hash_and_stay_distinct():
    a = kr.pod_name("p" * 51, JOB, "0")
    b = kr.pod_name("p" * 50 + "q", JOB, "0")
    assert a != b and len(a) <= 54
    assert kr.pod_name("edges", JOB, "12") == "edges-01234567-12"
    assert kr.label_value("Edges_v2") == "Edges_v2"
    assert kr.label_value("-x-") != kr.label_value("x")


def test_pod_name_with_kpo_suffix_is_a_valid_pod_name():
    body = manifest(minimal(name="A_Very_Long_Pipeline_Name_That_Goes_On_And_On_For_Ever_x"), set_id="1023")
    assert DNS_1123.match(body["metadata"]["name"]) and len(body["metadata"]["name"]) <= 63
    labels = body["metadata"]["labels"]
    assert labels["pach-airflow.io/job"] == JOB and labels["pach-airflow.io/set"] == "1023"
    assert body["metadata"]["annotations"]["pach-airflow.io/pipeline"] == (
        "A_Very_Long_Pipeline_Name_That_Goes_On_And_On_For_Ever_x")


def test_worker_scripts_are_safe_from_kubelet_expansion():
    # kubelet expands $(VAR) of defined variables and turns $$ into $ in command/args
    body = manifest(FULL_SPEC)
    for name in ("stage", "upload"):
        c = container(body, name)
        defined = set(env_of(c))
        script = c["command"][-1]
        assert "$$" not in script
        assert not [v for v in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", script) if v in defined]


# ------------------------------------------------------------------------------------------- mapping


def test_kpo_kwargs_equal_partial_plus_expand():
    full = kr.kpo_kwargs(FULL_SPEC, pipeline="edges", job_id=JOB, set_id="2", config=CONFIG)
    part = kr.kpo_partial_kwargs(FULL_SPEC, CONFIG)
    exp = kr.kpo_expand_kwargs("edges", JOB, "2", CONFIG)
    assert set(full) == {"task_id", *part, *exp}
    assert not set(part) & set(exp)
    assert full["annotations"] == {"pach-airflow.io/pipeline": "edges", "pach-airflow.io/job": JOB,
                                   "pach-airflow.io/set": "2"}
    with pytest.raises(SpecError, match="pipeline other"):
        kr.kpo_kwargs(FULL_SPEC, pipeline="other", job_id=JOB, set_id="2", config=CONFIG)


def test_bad_config_values_name_the_key():
    with pytest.raises(RunnerError, match=r"\[pach_airflow\] k8s_startup_timeout: 'soon'"):
        kr.KubernetesConfig.from_mapping({"store": "s3://b/p", "k8s_startup_timeout": "soon"})
    with pytest.raises(RunnerError, match=r"\[pach_airflow\] image_pull_policy: 'always'"):
        kr.KubernetesConfig.from_mapping({"store": "s3://b/p", "image_pull_policy": "always"})
    cfg = kr.KubernetesConfig.from_mapping({"store": "s3://b/p", "k8s_host_network": "true", "shim_start_timeout": "9"})
    assert cfg.host_network is True and cfg.shim_start_timeout == 9
