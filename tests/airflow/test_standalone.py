"""The real thing: ``airflow standalone`` (scheduler, dag-processor, triggerer, API server, SQLite) in a
private network namespace, our loader shim in its dags folder, our plugin, a local store.

One server for the module (it takes ~15-30 s to start); the tests run in order on it:
- ``pach-airflow put file`` → the commit watcher (triggerer) starts a run → the output commit appears →
  the downstream pipeline runs on the upstream's Asset event;
- ``airflow dags trigger`` with ``--conf`` pins a commit; a bad conf fails the run at once;
- three commits in quick succession → three jobs, one per commit, in order;
- spec files added, changed, broken and deleted reach Airflow without a restart.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from tests.fixtures.airflow import COPY, COUNT, SHIM

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """dags folder + store + a running standalone, shared by the tests of this module."""
    from tests.fixtures.airflow import _start_standalone

    base = tmp_path_factory.mktemp("standalone")
    dags = base / "dags"
    dags.mkdir()
    shutil.copy(SHIM, dags / SHIM.name)
    (dags / "copy.yaml").write_text(COPY)
    (dags / "count.yaml").write_text(COUNT)
    store_url = "file://" + str(base / "store")
    from pach_airflow.pfs import open_store

    store = open_store(store_url)
    store.create_repo("data")
    # Airflow's default (new DAGs paused) on purpose: pipeline DAGs must start unpaused by themselves.
    server = _start_standalone(base / "home", dags, {"PACH_AIRFLOW_STORE": store_url,
                                                     "AIRFLOW__PACH_AIRFLOW__STORE": store_url,
                                                     "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"})
    try:
        yield {"server": server, "dags": dags, "store": store, "store_url": store_url, "base": base}
    finally:
        server.stop()


def _put(world, path: str, data: bytes) -> str:
    """``pach-airflow put file data@master:<path>`` as a user would; returns the new commit id."""
    src = world["base"] / "upload.bin"
    src.write_bytes(data)
    world["server"].run(["pach-airflow", "--store", world["store_url"], "put", "file", f"data@master:{path}",
                         "-f", str(src)])
    return world["store"].inspect_branch("data", "master").head


def _jobs(world, pipeline: str) -> list[dict]:
    from pach_airflow import jobs

    return [j.record for j in jobs.list_jobs(world["store"], pipeline)]


def _pins(job: dict) -> dict[str, str]:
    return {c["repo"]: c["id"] for c in job["input_commits"]}


def _wait_jobs(world, pipeline: str, count: int, timeout: float = 120) -> list[dict]:
    def done():
        found = [j for j in _jobs(world, pipeline) if j["state"] in ("JOB_SUCCESS", "JOB_FAILURE", "JOB_KILLED")]
        return found if len(found) >= count else None

    return world["server"].wait_for(done, timeout, interval=1, what=f"{count} finished job(s) of {pipeline}")


def test_put_file_starts_runs_and_downstream(world):
    server = world["server"]
    server.wait_dag("copy")
    server.wait_dag("count")
    started = time.monotonic()
    commit = _put(world, "/a.txt", b"a\n")

    (job,) = _wait_jobs(world, "copy", 1)
    assert job["state"] == "JOB_SUCCESS" and _pins(job) == {"data": commit}
    assert world["store"].read_file("copy", "master", "/a.txt") == b"a\n"
    runs = server.wait_runs("copy", 1)
    assert runs[0]["run_type"] == "asset_triggered"
    print(f"put file -> copy job done in {time.monotonic() - started:.1f}s")

    (down,) = _wait_jobs(world, "count", 1)
    assert down["state"] == "JOB_SUCCESS"
    assert world["store"].read_file("count", "master", "/count.txt") == b"1\n"
    assert _pins(down)["copy"] == world["store"].inspect_branch("copy", "master").head
    # The run's mapped task is labelled by its datum.
    run_id = runs[0]["dag_run_id"]
    tis = server.api("GET", f"/api/v2/dags/copy/dagRuns/{run_id}/taskInstances?task_id=process")
    labels = [ti.get("rendered_map_index") for ti in tis["task_instances"] if ti["task_id"] == "process"]
    assert labels == ["data:/a.txt"]


def test_dags_trigger_with_conf_and_bad_conf(world):
    server = world["server"]
    first = _jobs(world, "copy")[-1]["input_commits"][0]["id"]
    _put(world, "/b.txt", b"b\n")
    _wait_jobs(world, "copy", 2)
    before = len(_jobs(world, "copy"))

    server.run(["airflow", "dags", "trigger", "copy", "--conf", json.dumps({"commits": {"data": first}})])
    jobs = _wait_jobs(world, "copy", before + 1)
    newest = max(jobs, key=lambda j: j["created"])
    assert _pins(newest) == {"data": first}
    assert {f.path for f in world["store"].walk("copy", "master")} == {"/a.txt"}

    server.run(["airflow", "dags", "trigger", "copy", "--conf", json.dumps({"commits": {"nope": first}})])

    def failed_run():
        runs = server.dag_runs("copy")
        return [r for r in runs if r["state"] == "failed"]

    (bad,) = server.wait_for(failed_run, 90, interval=1, what="the bad-conf run to fail")
    tis = server.api("GET", f"/api/v2/dags/copy/dagRuns/{bad['dag_run_id']}/taskInstances")
    states = {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}
    assert states["plan"] == "failed"
    assert len(_jobs(world, "copy")) == before + 1  # the bad run made no job


def test_three_quick_commits_three_jobs_in_order(world):
    before = len(_jobs(world, "copy"))
    commits = [_put(world, f"/q{i}.txt", b"%d\n" % i) for i in range(3)]
    jobs = _wait_jobs(world, "copy", before + 3, timeout=180)
    newest = sorted(jobs, key=lambda j: j["created"])[-3:]
    assert [_pins(j)["data"] for j in newest] == commits
    assert all(j["state"] == "JOB_SUCCESS" for j in newest)


def test_spec_files_reach_airflow_without_restart(world):
    server, dags = world["server"], world["dags"]
    late = COPY.replace("name: copy", "name: late").replace("repo: data", "repo: late_in")
    (dags / "late.yaml").write_text(late)
    t0 = time.monotonic()
    server.wait_dag("late", timeout=90)
    print(f"new spec visible after {time.monotonic() - t0:.1f}s")

    (dags / "late.yaml").write_text(late.replace("pipeline:", "description: second version\npipeline:"))
    server.wait_for(lambda: server.api("GET", "/api/v2/dags/late").get("description") == "second version",
                    90, interval=1, what="the changed spec")

    (dags / "late.yaml").write_text(late.replace('glob: "/*"', ""))
    def placeholder():
        d = server.api("GET", "/api/v2/dags/late/details")
        tags = [t["name"] for t in d.get("tags", [])]
        return d if "invalid-spec" in tags and "input.pfs.glob" in (d.get("doc_md") or "") else None

    dag = server.wait_for(placeholder, 90, interval=1, what="the broken spec's placeholder")
    assert "late.yaml: pipeline late: input.pfs.glob: field required" in dag["doc_md"]
    assert server.api("GET", "/api/v2/dags/copy")["is_stale"] is False  # the others are untouched
    assert dag["dag_id"] == "late"

    (dags / "late.yaml").unlink()
    server.wait_for(lambda: server.api("GET", "/api/v2/dags/late").get("is_stale") is True, 120, interval=2,
                    what="the deleted spec's DAG to go stale")


def test_pipeline_lifecycle_from_the_cli(world):
    """create/stop/start/delete pipeline: the spec lands in the dags folder, the DAG pauses, resumes, goes."""
    server, base = world["server"], world["base"]
    spec = base / "lifecycle.yaml"
    spec.write_text(COPY.replace("name: copy", "name: lifecycle"))
    pach = ["pach-airflow", "--store", world["store_url"]]
    server.run([*pach, "create", "pipeline", "-f", str(spec)])
    assert (world["dags"] / "lifecycle.yaml").read_text() == spec.read_text()
    assert server.wait_dag("lifecycle", timeout=90)["is_paused"] is False

    server.run([*pach, "stop", "pipeline", "lifecycle"])
    assert server.api("GET", "/api/v2/dags/lifecycle")["is_paused"] is True
    server.run([*pach, "start", "pipeline", "lifecycle"])
    assert server.api("GET", "/api/v2/dags/lifecycle")["is_paused"] is False

    bad = base / "bad.yaml"
    bad.write_text(COPY.replace("name: copy", "name: never").replace('glob: "/*"', ""))
    p = server.run([*pach, "create", "pipeline", "-f", str(bad)], check=False)
    assert p.returncode == 1 and b"input.pfs.glob" in p.stderr
    assert not (world["dags"] / "never.yaml").exists()

    server.run([*pach, "delete", "pipeline", "lifecycle"])
    assert not (world["dags"] / "lifecycle.yaml").exists()
    server.wait_for(lambda: server.api("GET", "/api/v2/dags/lifecycle").get("is_stale") is True, 120, interval=2,
                    what="the deleted pipeline's DAG to go stale")
