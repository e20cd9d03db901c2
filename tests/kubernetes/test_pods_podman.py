"""The real thing: the pods the Kubernetes runner builds run under ``podman kube play``.

Each test plans a job in an S3 store (SeaweedFS on 127.0.0.1, ``tests/fixtures/s3.py``), asks a plain
``KubernetesPodOperator`` for the pod of every datum set (``build_pod_request_obj(dry_run=True)``),
runs that very manifest with podman (init container staging from S3, the user's container, the upload
sidecar, shared emptyDirs, S3 credentials from a Secret), then finishes the job. The user's image holds
one static C program (``tests/kubernetes/ptool.c``): no shell, no Python.

The same job run by the local runner (``jobs.run_job`` on a local store with the same inputs) must give
the same output commit (paths and content hashes) and the same datum states.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from pach_airflow.runners import kubernetes as kr

pytestmark = [pytest.mark.podman, pytest.mark.s3, pytest.mark.slow]

FILES = {
    "/a.txt": b"hello\n",
    "/b/c.txt": b"world\n",
    "/b/d.txt": b"more words\n",
}


def _spec(name: str, image: str, **extra) -> dict:
    spec = {
        "pipeline": {"name": name},
        "transform": {"image": image, "cmd": ["ptool", "upper", "/pfs/in", "/pfs/out"]},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
    }
    for key, value in extra.items():
        if key == "transform":
            spec["transform"].update(value)
        else:
            spec[key] = value
    return spec


def _fill(store, files: dict[str, bytes]) -> None:
    store.create_repo("in")
    with store.open_commit("in", "master") as c:
        for path, data in files.items():
            c.put_file(path, data)


def _output(store, repo: str, commit: str) -> list[tuple[str, str]]:
    return [(f.path, f.hash) for f in store.walk(repo, commit)]


@pytest.fixture
def ptool_on_path(tmp_path, monkeypatch) -> Path:
    """ptool built for this machine, on PATH, so the local runner runs the same cmd."""
    exe = tmp_path / "bin" / "ptool"
    exe.parent.mkdir()
    subprocess.run(["gcc", "-static", "-O2", "-o", str(exe), str(Path(__file__).with_name("ptool.c"))], check=True)
    monkeypatch.setenv("PATH", f"{exe.parent}:{__import__('os').environ['PATH']}")
    return exe


@pytest.fixture
def s3_secret(podman, s3_server):
    """The S3 credentials as a Kubernetes Secret (podman's secret store), endpoint included."""
    name = f"pach-airflow-s3-{uuid.uuid4().hex[:8]}"
    podman.create_secret(name, s3_server.env())
    yield name
    podman.remove_secret(name)


def run_job_in_pods(podman, store, store_url: str, spec: dict, config: kr.KubernetesConfig):
    """plan_job → one podman pod per datum set (the KPO's own V1Pod) → finish_job."""
    from pach_airflow import jobs

    planned = jobs.plan_job(store, spec)
    runs = []
    for set_id in planned.set_ids:
        pod = kr.pod_request(spec, pipeline=planned.pipeline, job_id=planned.job_id, set_id=set_id, config=config)
        manifest = kr.pod_manifest(pod)
        run = podman.play(manifest)
        runs.append(run)
        assert run.ok, run.describe()
    info = jobs.finish_job(store, planned.pipeline, planned.job_id)
    return info, runs


def run_job_locally(tmp_path, spec: dict, files: dict[str, bytes]):
    from pach_airflow import jobs
    from pach_airflow.pfs import open_store

    store = open_store(f"file://{tmp_path}/local-store")
    _fill(store, files)
    return store, jobs.run_job(store, spec)


def _config(pod_images, s3_secret, store_url) -> kr.KubernetesConfig:
    return kr.KubernetesConfig(store=store_url, worker_image=pod_images.worker, image_pull_policy="Never",
                               s3_secret=s3_secret, host_network=True, shim_start_timeout=30)


def _datum_states(store, pipeline, job_id) -> list[tuple[str, str]]:
    from pach_airflow import jobs

    return sorted((d["id"], d["state"]) for d in jobs.list_job_datums(store, pipeline, job_id))


def test_pod_output_commit_equals_local_runner(podman, pod_images, s3_store, s3_store_url, s3_secret,
                                               ptool_on_path, tmp_path):
    _fill(s3_store, FILES)
    spec = _spec("upper", pod_images.user)
    info, runs = run_job_in_pods(podman, s3_store, s3_store_url, spec, _config(pod_images, s3_secret, s3_store_url))
    assert info.state == "JOB_SUCCESS", info
    assert info.data_processed == 2 and info.data_failed == 0
    pod_out = _output(s3_store, "upper", info.id)
    assert [p for p, _ in pod_out] == ["/a.txt", "/b/c.txt", "/b/d.txt"]
    assert s3_store.read_file("upper", info.id, "/b/c.txt") == b"WORLD\n"

    local_store, local_info = run_job_locally(tmp_path, spec, FILES)
    assert local_info.state == "JOB_SUCCESS"
    assert _output(local_store, "upper", local_info.id) == pod_out
    # the user's code ran in the pod's user container: its log says so through the upload record
    assert all("stage" not in r.exit_codes for r in runs)
    assert set(runs[0].exit_codes) == {"base", "upload"}


def test_failing_datum_err_cmd_and_tries_match_local_runner(podman, pod_images, s3_store, s3_store_url,
                                                            s3_secret, ptool_on_path, tmp_path):
    files = {**FILES, "/bad.txt": b"this one will FAIL\n", "/c/FAIL.txt": b"FAIL too\n"}
    _fill(s3_store, files)
    # bad.txt fails every attempt and has no recovery; err_cmd "exit 0" rescues nothing here but is run.
    spec = _spec("failing", pod_images.user, datum_tries=2,
                 transform={"err_cmd": ["ptool", "exit", "1"]})
    info, _ = run_job_in_pods(podman, s3_store, s3_store_url, spec, _config(pod_images, s3_secret, s3_store_url))
    local_store, local_info = run_job_locally(tmp_path, spec, files)
    assert info.state == local_info.state == "JOB_FAILURE"
    assert (info.data_processed, info.data_failed, info.data_recovered) == (
        local_info.data_processed, local_info.data_failed, local_info.data_recovered) == (2, 2, 0)
    assert _datum_states(s3_store, "failing", info.id) == _datum_states(local_store, "failing", local_info.id)

    # now with an err_cmd that succeeds: the failing datums are RECOVERED, in the pod as locally
    spec = _spec("recovering", pod_images.user, datum_tries=2, transform={"err_cmd": ["ptool", "exit", "0"]})
    info, _ = run_job_in_pods(podman, s3_store, s3_store_url, spec, _config(pod_images, s3_secret, s3_store_url))
    local_store2, local_info = run_job_locally(tmp_path / "second", spec, files)
    assert (info.data_processed, info.data_failed, info.data_recovered) == (
        local_info.data_processed, local_info.data_failed, local_info.data_recovered) == (2, 0, 2)
    assert info.state == local_info.state
    assert _datum_states(s3_store, "recovering", info.id) == _datum_states(local_store2, "recovering", local_info.id)


def test_pod_ends_when_the_user_container_dies_without_the_shim(podman, pod_images, s3_store, s3_store_url,
                                                                s3_secret):
    """A user container that exits before (or without) running the shim never writes /pach/done: the
    uploader must not wait for ever. It notices that no shim runs, uploads what there is, and the pod
    ends; the job then fails, naming the datums that did not run."""
    import json

    _fill(s3_store, {"/a.txt": b"x\n"})
    # the user's command is replaced (pod_patch, applied last) by one that exits at once
    patch = [{"op": "replace", "path": "/containers/0/command", "value": ["/ptool", "exit", "7"]}]
    spec = _spec("crashing", pod_images.user, pod_patch=json.dumps(patch))
    config = kr.KubernetesConfig(store=s3_store_url, worker_image=pod_images.worker, image_pull_policy="Never",
                                 s3_secret=s3_secret, host_network=True, shim_start_timeout=3)
    from pach_airflow import jobs

    planned = jobs.plan_job(s3_store, spec)
    pod = kr.pod_request(spec, pipeline="crashing", job_id=planned.job_id, set_id=planned.set_ids[0], config=config)
    run = podman.play(kr.pod_manifest(pod), timeout=60)
    assert run.exit_codes.get("base") == 7, run.describe()
    assert "upload" in run.exit_codes and run.exit_codes["upload"] >= 0, run.describe()
    assert "no shim ran in the user container" in run.logs["upload"], run.describe()
    assert run.seconds < 45, run.describe()
    info = jobs.finish_job(s3_store, "crashing", planned.job_id)
    assert info.state == "JOB_FAILURE" and info.data_processed == 0, info


def test_user_container_under_another_uid_than_the_worker(podman, pod_images, s3_store, s3_store_url, s3_secret):
    """Images often set their own USER: the user's container then runs as that uid while the init
    container staged /pach as root. Here only the user container runs as 1000:1000 (a securityContext
    added by pod_patch, as an image's USER would do); it must still read its inputs and write /pfs/out."""
    import json

    _fill(s3_store, {"/a.txt": b"abc\n"})
    patch = [{"op": "add", "path": "/containers/0/securityContext", "value": {"runAsUser": 1000, "runAsGroup": 1000}}]
    spec = _spec("other-uid", pod_images.user, pod_patch=json.dumps(patch))
    info, runs = run_job_in_pods(podman, s3_store, s3_store_url, spec, _config(pod_images, s3_secret, s3_store_url))
    assert info.state == "JOB_SUCCESS", (info, [r.describe() for r in runs])
    assert s3_store.read_file("other-uid", info.id, "/a.txt") == b"ABC\n"


def test_user_code_sees_pachyderms_env_and_its_secret_but_no_store_credentials(podman, pod_images, s3_store,
                                                                              s3_store_url, s3_secret, s3_server):
    """transform.secrets reach the user's code from a Kubernetes Secret (env_var and mount_path); the
    datum's Pachyderm variables are set; the store's S3 credentials are not visible to user code."""
    _fill(s3_store, {"/only.txt": b"x\n"})
    user_secret = podman.create_secret(f"db-{uuid.uuid4().hex[:8]}", {"password": "hunter2"})
    try:
        spec = _spec("env-dump", pod_images.user, transform={
            "cmd": ["ptool", "env", "/pfs/out/env.txt"], "env": {"MODE": "fast"},
            "secrets": [{"name": user_secret, "key": "password", "env_var": "DB_PASSWORD"}]})
        info, runs = run_job_in_pods(podman, s3_store, s3_store_url, spec,
                                     _config(pod_images, s3_secret, s3_store_url))
    finally:
        podman.remove_secret(user_secret)
    assert info.state == "JOB_SUCCESS", (info, [r.describe() for r in runs])
    env = dict(line.split("=", 1) for line in
               s3_store.read_file("env-dump", info.id, "/env.txt").decode().splitlines() if "=" in line)
    assert env["DB_PASSWORD"] == "hunter2"
    assert env["MODE"] == "fast"
    assert env["in"] == "/pfs/in/only.txt"
    assert env["PACH_JOB_ID"] == info.id and env["PPS_PIPELINE_NAME"] == "env-dump"
    assert not [k for k in env if k.startswith("AWS_")]
    assert s3_server.secret_key not in "".join(r.describe() for r in runs)  # nor in any container's log


def test_pod_ends_when_the_shim_is_killed_mid_datum(podman, pod_images, s3_store, s3_store_url, s3_secret):
    """The OOM-kill case: the shim runs, then dies (SIGKILL, no trap can write /pach/done) while the
    datum's code still sleeps. The uploader sees the shim vanish from the pod's process namespace,
    uploads, and the pod ends long before the datum's 60 s sleep would; the job fails."""
    import json

    _fill(s3_store, {"/a.txt": b"x\n"})
    kill_shim = ("/pach/bin/busybox sh /pach/shim.sh & /pach/bin/busybox sleep 3; "
                 "/pach/bin/busybox kill -9 $!; exit 137")
    patch = [{"op": "replace", "path": "/containers/0/command",
              "value": ["/pach/bin/busybox", "sh", "-c", kill_shim]}]
    spec = _spec("killed", pod_images.user, pod_patch=json.dumps(patch),
                 transform={"cmd": ["ptool", "sleep", "60"]})
    from pach_airflow import jobs

    planned = jobs.plan_job(s3_store, spec)
    pod = kr.pod_request(spec, pipeline="killed", job_id=planned.job_id, set_id=planned.set_ids[0],
                         config=_config(pod_images, s3_secret, s3_store_url))
    run = podman.play(kr.pod_manifest(pod), timeout=90)
    assert run.exit_codes.get("base") == 137, run.describe()
    assert "stopped before writing /pach/done" in run.logs["upload"], run.describe()
    assert run.seconds < 40, run.describe()
    info = jobs.finish_job(s3_store, "killed", planned.job_id)
    assert info.state == "JOB_FAILURE" and info.data_processed == 0, info


@pytest.mark.parametrize("name,transform,extra,state", [
    # exit 3 is accepted: the datum succeeds (driver.go accept_return_code)
    ("accepting", {"cmd": ["ptool", "exit", "3"], "accept_return_code": [3]}, {}, "SUCCESS"),
    # the attempt is killed after 2 s (datum_timeout), once: the datum fails long before 60 s
    ("timing-out", {"cmd": ["ptool", "sleep", "60"]}, {"datum_timeout": "2s", "datum_tries": 1}, "FAILED"),
])
def test_accept_return_code_and_datum_timeout_match_local_runner(podman, pod_images, s3_store, s3_store_url,
                                                                 s3_secret, ptool_on_path, tmp_path,
                                                                 name, transform, extra, state):
    files = {"/a.txt": b"x\n"}
    _fill(s3_store, files)
    spec = _spec(name, pod_images.user, transform=transform, **extra)
    info, runs = run_job_in_pods(podman, s3_store, s3_store_url, spec, _config(pod_images, s3_secret, s3_store_url))
    local_store, local_info = run_job_locally(tmp_path, spec, files)
    pod_states = _datum_states(s3_store, name, info.id)
    assert [s for _, s in pod_states] == [state], [r.describe() for r in runs]
    assert pod_states == _datum_states(local_store, name, local_info.id)
    assert info.state == local_info.state
    assert runs[0].seconds < 40, runs[0].describe()
