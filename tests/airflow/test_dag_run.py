"""Compiled pipelines run end to end with ``dag.test()``: the local runner, a real local store, Airflow's
own task runner. Proves the output commit, datums skipped on a rerun, a two-pipeline chain, pinned
commits from the run conf, bad conf failing at once, a failing datum failing the run, and one job per
input commit, in order."""

from __future__ import annotations

import pytest

from tests.fixtures.airflow import COPY, COUNT, task_states

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def _files(store, repo: str, ref: str = "master") -> dict[str, bytes]:
    return {f.path: store.read_file(repo, ref, f.path) for f in store.walk(repo, ref)}


def _put(store, repo: str, files: dict[str, bytes]) -> str:
    with store.open_commit(repo, "master") as c:
        for path, data in files.items():
            c.put_file(path, data)
    return c.commit_id


def _job(store, pipeline: str, job_id: str) -> dict:
    from pach_airflow import jobs

    return jobs.inspect_job(store, pipeline, job_id).record


def test_output_commit_then_rerun_skips_datums(airflow_dags):
    airflow_dags.add_spec(COPY, "copy.yaml")
    store = airflow_dags.store()
    store.create_repo("data")
    first = _put(store, "data", {"/a.txt": b"a\n", "/b.txt": b"b\n"})

    run = airflow_dags.run("copy")
    assert run.state == "success"
    states = task_states(run)
    assert states["process"] == ["success", "success"]
    assert states["finish"] == ["success"]
    assert _files(store, "copy") == {"/a.txt": b"a\n", "/b.txt": b"b\n"}
    head = store.inspect_commit("copy", "master")
    assert head.origin == "AUTO"
    assert {(p["repo"], p["id"]) for p in head.provenance} >= {("data", first)}

    # One more file: the asset-style run (no conf) finds the new commit; the two old datums are skipped.
    second = _put(store, "data", {"/c.txt": b"c\n"})
    run = airflow_dags.run("copy", conf={"drain": True})
    assert run.state == "success"
    assert task_states(run)["process"] == ["success"]  # only the new datum ran
    job = _job(store, "copy", store.inspect_commit("copy", "master").id)
    assert job["data_skipped"] == 2 and job["data_processed"] == 1
    assert {c["repo"]: c["id"] for c in job["input_commits"]} == {"data": second}
    assert set(_files(store, "copy")) == {"/a.txt", "/b.txt", "/c.txt"}

    # Nothing new: the run does nothing and makes no job.
    before = store.inspect_commit("copy", "master").id
    run = airflow_dags.run("copy", conf={"drain": True})
    assert run.state == "success"
    assert task_states(run)["finish"] == ["skipped"]
    assert store.inspect_commit("copy", "master").id == before


def test_two_pipeline_chain(airflow_dags):
    airflow_dags.add_spec(COPY, "copy.yaml")
    airflow_dags.add_spec(COUNT, "nested/count.json".replace(".json", ".yaml"))
    bag = airflow_dags.dagbag()
    # count reads copy's output: scheduled on its Asset, no watcher of its own.
    count_assets = bag.dags["count"].timetable.asset_condition
    assert [(a.name, a.watchers) for a in count_assets.objects] == [("pfs/copy@master", [])]
    store = airflow_dags.store()
    store.create_repo("data")
    _put(store, "data", {"/a.txt": b"a\n", "/b.txt": b"b\n", "/c.txt": b"c\n"})

    assert airflow_dags.run("copy").state == "success"
    run = airflow_dags.run("count")
    assert run.state == "success"
    assert _files(store, "count") == {"/count.txt": b"3\n"}
    copy_head = store.inspect_commit("copy", "master").id
    prov = store.inspect_commit("count", "master").provenance
    assert {(p["repo"], p["id"]) for p in prov} >= {("copy", copy_head)}


def test_downstream_run_before_upstream_output_waits(airflow_dags):
    """Specs land in any order: a downstream run before the upstream pipeline's first output commit
    does nothing (no job, no failure), and the upstream's output then runs it for real."""
    airflow_dags.add_spec(COPY, "copy.yaml")
    airflow_dags.add_spec(COUNT, "count.yaml")
    store = airflow_dags.store()
    store.create_repo("data")
    _put(store, "data", {"/a.txt": b"a\n"})

    early = airflow_dags.run("count")
    assert early.state == "success"
    assert task_states(early)["process"] == ["skipped"]  # mapped over no sets
    from pach_airflow import jobs

    assert list(jobs.list_jobs(store, "count")) == []

    assert airflow_dags.run("copy").state == "success"
    assert airflow_dags.run("count").state == "success"
    assert _files(store, "count") == {"/count.txt": b"1\n"}


def test_conf_pins_commits_and_bad_conf_fails(airflow_dags):
    airflow_dags.add_spec(COPY, "copy.yaml")
    store = airflow_dags.store()
    store.create_repo("data")
    old = _put(store, "data", {"/a.txt": b"a\n"})
    _put(store, "data", {"/b.txt": b"b\n"})

    run = airflow_dags.run("copy", conf={"commits": {"data": old}})
    assert run.state == "success"
    assert _files(store, "copy") == {"/a.txt": b"a\n"}

    before = store.inspect_commit("copy", "master").id
    for bad in ({"commits": {"nope": old}}, {"commits": {"data": "not-a-commit"}},
                {"commits": {"data": "0" * 32}}, {"comits": {}}):
        run = airflow_dags.run("copy", conf=bad)
        assert run.state == "failed", bad
        assert task_states(run)["plan"] == ["failed"]
    assert store.inspect_commit("copy", "master").id == before  # nothing written


def test_failing_datum_fails_the_run(airflow_dags):
    airflow_dags.add_spec(COPY.replace("cp -r /pfs/data/. /pfs/out/", "test ! -e /pfs/data/bad && cp -r /pfs/data/. /pfs/out/")
                          .replace("name: copy", "name: picky"), "picky.yaml")
    store = airflow_dags.store()
    store.create_repo("data")
    _put(store, "data", {"/ok.txt": b"fine\n", "/bad": b"x\n"})
    run = airflow_dags.run("picky")
    assert run.state == "failed"
    states = task_states(run)
    assert sorted(states["process"]) == ["failed", "success"]
    assert states["finish"] == ["failed"]
    from pach_airflow import jobs

    (job,) = jobs.list_jobs(store, "picky")
    assert job.state == "JOB_FAILURE" and "failed" in (job.reason or "")


def test_backlog_one_job_per_commit_in_order(airflow_dags):
    airflow_dags.add_spec(COPY, "copy.yaml")
    store = airflow_dags.store()
    store.create_repo("data")
    _put(store, "data", {"/a.txt": b"a\n"})
    assert airflow_dags.run("copy").state == "success"
    commits = [_put(store, "data", {f"/n{i}.txt": b"%d\n" % i}) for i in range(3)]

    seen = []
    for i in range(3):
        run = airflow_dags.run("copy", conf={"drain": True})
        assert run.state == "success"
        states = task_states(run)
        # The first two runs see more commits waiting and queue the next run.
        assert states["next_job"] == (["success"] if i < 2 else ["skipped"]), (i, states)
        job = _job(store, "copy", store.inspect_commit("copy", "master").id)
        seen.append({c["repo"]: c["id"] for c in job["input_commits"]}["data"])
    assert seen == commits


CRON = """
pipeline:
  name: clock
transform:
  image: busybox:1.36
  cmd: ["sh", "-c", "cp /pfs/time/* /pfs/out/"]
input:
  cron:
    name: time
    spec: "@every 1h"
    start: "{start}"
    overwrite: {overwrite}
"""


def _cron_spec(overwrite: bool) -> str:
    import datetime as dt

    start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2, minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return CRON.format(start=start, overwrite="true" if overwrite else "false")


def test_cron_ticks_catch_up_one_job_each(airflow_dags):
    airflow_dags.add_spec(_cron_spec(overwrite=False), "clock.yaml")
    store = airflow_dags.store()
    counts = []
    for _ in range(2):  # two missed ticks: two tick commits, two jobs (the second drains the backlog)
        run = airflow_dags.run("clock", conf={"drain": True})
        assert run.state == "success"
        counts.append(len(_files(store, "clock")))
    assert counts == [1, 2]  # output commit i holds i files, as in Pachyderm's SimpleCron
    ticks = [c.id for c in store.list_commits("clock_time", "master") if c.description.startswith("cron tick")]
    assert len(ticks) == 2
    names = sorted(_files(store, "clock_time"))
    assert all(len(n) == len("/2026-01-01T00:00:00Z") and n.endswith("Z") for n in names)
    assert set(_files(store, "clock_time").values()) == {b""}
    # `pachctl run cron`: a tick now, and its job.
    run = airflow_dags.run("clock", conf={"run_cron": True})
    assert run.state == "success"
    assert len(_files(store, "clock")) == 3


def test_cron_overwrite_keeps_one_tick(airflow_dags):
    from pach_airflow.compiler import tick_crons
    from pach_airflow.spec import parse_specs

    spec = parse_specs(_cron_spec(overwrite=True))[0]
    store = airflow_dags.store()
    from pach_airflow import jobs

    jobs.ensure_pipeline(store, spec)
    written = tick_crons(store, spec)
    assert len(written) == 2
    for commit in written:
        assert len(list(store.walk("clock_time", commit))) == 1
    assert tick_crons(store, spec) == []  # nothing more is due
