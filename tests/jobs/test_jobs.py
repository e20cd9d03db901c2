"""Jobs end to end through the CLI: chains and provenance, failures, crashes, egress, timeouts,
parallelism, and the job/pipeline commands' output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pach_airflow.jobs import find_clash

PFS_DATA = {"pfs": {"repo": "data", "glob": "/*"}}


def test_chain_provenance_names_upstream_output_commit(pps):
    pps.repo("data")
    pps.put("data", "/a", "1")
    a = pps.spec("a", PFS_DATA, stdin=["cp /pfs/data/* /pfs/out/"])
    b = pps.spec("b", {"pfs": {"repo": "a", "glob": "/*"}}, stdin=["for f in /pfs/a/*; do",
                                                                "cat $f $f > /pfs/out/$(basename $f); done"])
    a_id, a_job = pps.run(a)
    b_id, b_job = pps.run(b)
    assert a_job["state"] == b_job["state"] == "JOB_SUCCESS"
    assert {"repo": "a", "branch": "master", "id": a_id} in b_job["input_commits"]
    b_commit = pps.store().inspect_commit("b", b_id)
    assert b_commit.origin == "AUTO"
    assert [(p["repo"], p["id"]) for p in b_commit.provenance] == [("a", a_id)]
    assert b_job["output_commit"] == {"repo": "b", "branch": "master", "id": b_id}
    # one global id through the chain, as in Pachyderm
    assert pps.head("data") == a_id == b_id
    assert pps.files("b") == {"/a": b"11"}


def test_missing_command_fails_datum_with_log(pps):
    pps.repo("data")
    pps.put("data", "/a", "1")
    good = pps.spec("p", PFS_DATA, stdin=["cp /pfs/data/* /pfs/out/"])
    pps.run(good)
    before = pps.files("p")
    input_head = pps.head("data")
    pps.put("data", "/b", "2")
    input_head = pps.head("data")
    bad = pps.spec("p", PFS_DATA, cmd=["/no/such/command-xyz", "arg"])
    pps.pach("update", "pipeline", "-f", str(bad), "--reprocess")
    job_id, job = pps.run(bad, expect_code=1)
    assert job["state"] == "JOB_FAILURE"
    datums = pps.datums("p", job_id)
    # The new datum /b runs first and fails, so the changed /a (new salt) never runs (Pachyderm's
    # serial phase is not reached): it is listed STARTING with the reason.
    failed = [d for d in datums if d["state"] == "FAILED"]
    assert len(failed) == 1 and any("/b" in str(f) for f in failed[0]["files"])
    (not_run,) = [d for d in datums if d["state"] == "STARTING"]
    assert "not run" in not_run["reason"]
    datums = failed
    assert job["reason"].startswith(f"datum {datums[0]['id']} failed") or "failed" in job["reason"]
    log = pps.pach("logs", "-p", "p", "-j", job_id, "--datum", datums[0]["id"]).out
    assert "command-xyz" in log
    # nothing visible changed: the input branch, and the output's content (its head carries the error)
    assert pps.head("data") == input_head
    assert pps.files("p") == before
    assert pps.commits("p")[0].error == job["reason"]


def test_runner_sigkill_mid_job_then_rerun(pps, tmp_path):
    pps.repo("data")
    pps.commit("data", [{"put": f"/f{i}", "content": str(i)} for i in range(6)])
    marks = tmp_path / "marks"
    marks.mkdir()
    spec = pps.spec("p", PFS_DATA, stdin=[f"touch {marks}/$PACH_DATUM_ID", "cp /pfs/data/* /pfs/out/",
                                          "sleep 0.5"])
    proc = subprocess.Popen([sys.executable, "-m", "pach_airflow", "--store", pps.pach.store_url, "run",
                             "pipeline", "-f", str(spec)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(os.listdir(marks)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and everything it started
    proc.wait()
    assert pps.commits("p") == []  # no partial output is visible
    stale = pps.jobs("p")
    assert [j["state"] for j in stale] == ["JOB_RUNNING"]
    partial = pps.datums("p", stale[0]["id"])  # a job that never finished still lists its datums
    assert len(partial) == 6 and {d["state"] for d in partial} <= {"SUCCESS", "STARTING"}
    job_id, job = pps.run(spec)
    assert job["state"] == "JOB_SUCCESS" and job["data_total"] == 6
    assert pps.files("p") == {f"/f{i}": str(i).encode() for i in range(6)}
    states = {j["id"]: j["state"] for j in pps.jobs("p")}
    assert states[stale[0]["id"]] == "JOB_KILLED" and states[job_id] == "JOB_SUCCESS"


def test_egress_to_file_url(pps, tmp_path):
    pps.repo("data")
    pps.commit("data", [{"put": "/a", "content": "A"}, {"put": "/b", "content": "B"}])
    dest = tmp_path / "egress"
    spec = pps.spec("p", PFS_DATA, stdin=["mkdir -p /pfs/out/sub", "cp /pfs/data/* /pfs/out/sub/"],
                    egress={"URL": f"file://{dest}"})
    _, job = pps.run(spec)
    assert job["state"] == "JOB_SUCCESS"
    assert (dest / "sub" / "a").read_text() == "A" and (dest / "sub" / "b").read_text() == "B"
    eg = job["egress"]
    assert (eg["state"], eg["files"], eg["bytes"]) == ("SUCCESS", 2, 2)
    text = pps.pach("inspect", "job", f"p@{job['id']}").out
    assert f"Egress: SUCCESS file://{dest}" in text


@pytest.mark.s3
def test_egress_to_s3_url(pps, s3_env):
    """Egress to a real S3 server (SeaweedFS, the ``s3_env`` fixture); the store itself is local."""
    pps.repo("data")
    pps.commit("data", [{"put": "/a", "content": "A"}, {"put": "/d/b", "content": "BB"}])
    bucket = s3_env.make_bucket("egress")
    spec = pps.spec("p", {"pfs": {"repo": "data", "glob": "/"}}, stdin=["cp -r /pfs/data/* /pfs/out/"],
                    egress={"URL": f"s3://{bucket}/results/v1"})
    _, job = pps.run(spec)
    assert job["state"] == "JOB_SUCCESS" and job["egress"]["state"] == "SUCCESS"
    client = s3_env.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix="results/v1/")
    assert sorted(o["Key"] for o in listed["Contents"]) == ["results/v1/a", "results/v1/d/b"]
    assert client.get_object(Bucket=bucket, Key="results/v1/d/b")["Body"].read() == b"BB"


def test_egress_failure_fails_job(pps, tmp_path):
    pps.repo("data")
    pps.put("data", "/a", "A")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")  # egress under a regular file cannot create directories
    spec = pps.spec("p", PFS_DATA, stdin=["cp /pfs/data/* /pfs/out/"],
                    egress={"object_storage": {"url": f"file://{blocker}/dest"}})
    _, job = pps.run(spec, expect_code=1)
    assert job["state"] == "JOB_FAILURE"
    assert job["reason"].startswith(f"egress to file://{blocker}/dest failed")
    assert job["egress"]["state"] == "FAILED" and job["egress"]["attempts"] == 4
    assert pps.files("p") == {}  # the output commit carries the error, not the un-egressed output


def test_job_timeout_kills_job(pps):
    pps.repo("data")
    pps.commit("data", [{"put": f"/f{i}", "content": str(i)} for i in range(3)])
    # the datums sleep 600 s: the run returns (well within pytest's timeout) only if they are killed
    spec = pps.spec("p", PFS_DATA, stdin=["sleep 600"], job_timeout="2s")
    _, job = pps.run(spec, expect_code=1)
    assert job["state"] == "JOB_KILLED"
    assert "job_timeout" in job["reason"]
    head = pps.commits("p")[0]
    assert head.id == job["id"] and head.error == job["reason"]
    assert pps.files("p") == {}


def test_parallelism_runs_datums_at_once(pps, tmp_path):
    pps.repo("data")
    pps.commit("data", [{"put": f"/f{i}", "content": str(i)} for i in range(4)])
    log = tmp_path / "times"
    log.mkdir()
    spec = pps.spec("p", PFS_DATA, parallelism_spec={"constant": 4},
                    stdin=[f"cut -d' ' -f1 /proc/uptime > {log}/$PACH_DATUM_ID.start", "sleep 1",
                           f"cut -d' ' -f1 /proc/uptime > {log}/$PACH_DATUM_ID.end"])
    _, job = pps.run(spec)
    assert job["state"] == "JOB_SUCCESS"
    spans = []
    for f in log.glob("*.start"):
        spans.append((float(f.read_text()), float(f.with_suffix(".end").read_text())))
    assert len(spans) == 4
    # at the moment the last datum started, at least one other was still running
    last_start = max(s for s, _ in spans)
    assert sum(1 for s, e in spans if s <= last_start < e) >= 2


def test_zero_datum_job_empties_output(pps):
    pps.repo("data")
    pps.put("data", "/a", "1")
    spec = pps.spec("p", PFS_DATA, stdin=["cp /pfs/data/* /pfs/out/"])
    pps.run(spec)
    assert pps.files("p") == {"/a": b"1"}
    pps.delete("data", "/a")
    _, job = pps.run(spec)
    assert job["state"] == "JOB_SUCCESS" and job["data_total"] == 0
    assert pps.files("p") == {}


def test_failed_job_is_not_a_skip_base(pps):
    pps.repo("data")
    pps.commit("data", [{"put": "/ok", "content": "1"}, {"put": "/bad", "content": "2"}])
    spec = pps.spec("p", PFS_DATA, stdin=["test ! -e /pfs/data/bad || exit 1", "cp /pfs/data/* /pfs/out/"])
    _, job = pps.run(spec, expect_code=1)
    assert (job["data_processed"], job["data_failed"]) == (1, 1)
    pps.delete("data", "/bad")
    _, job = pps.run(spec)
    # the failed job is not the base: /ok is processed again, not skipped
    assert (job["state"], job["data_processed"], job["data_skipped"]) == ("JOB_SUCCESS", 1, 0)
    assert pps.files("p") == {"/ok": b"1"}


def test_file_directory_clash_names_both_datums(pps):
    pps.repo("data")
    pps.commit("data", [{"put": "/a", "content": "1"}, {"put": "/b", "content": "2"}])
    spec = pps.spec("p", PFS_DATA, stdin=[
        'if [ -e /pfs/data/a ]; then echo x > /pfs/out/x; else mkdir /pfs/out/x; echo y > /pfs/out/x/y; fi'])
    job_id, job = pps.run(spec, expect_code=1)
    assert job["reason"].startswith("file / directory path collision: /x")
    for d in pps.datums("p", job_id):
        assert d["id"] in job["reason"]


def test_find_clash_unit():
    ok = [{"id": "1", "state": "SUCCESS", "outputs": [["/a-b", "h", 1], ["/a.c", "h", 1]]},
          {"id": "2", "state": "SUCCESS", "outputs": [["/a/b", "h", 1]]},
          {"id": "3", "state": "FAILED", "outputs": [["/a/b", "h", 1]]}]
    assert find_clash(ok) is None
    dup = ok + [{"id": "4", "state": "SUCCESS", "outputs": [["/a/b", "h", 1]]}]
    assert find_clash(dup) == "duplicate path output by different datums: /a/b written by datum 2 and datum 4"
    nested = ok + [{"id": "5", "state": "SUCCESS", "outputs": [["/a", "h", 1]]}]
    assert find_clash(nested).startswith("file / directory path collision: /a is a file of datum 5")


def test_list_and_inspect_job_and_logs(pps):
    pps.repo("data")
    pps.commit("data", [{"put": "/a", "content": "1"}, {"put": "/b", "content": "2"}])
    spec = pps.spec("p", PFS_DATA, stdin=["echo hello from $PACH_DATUM_ID", "cp /pfs/data/* /pfs/out/"])
    job_id, _ = pps.run(spec)
    table = pps.pach("list", "job").lines()
    assert table[0].split() == ["PIPELINE", "ID", "STARTED", "DURATION", "RESTART", "PROGRESS", "DL", "UL",
                                "STATE"]
    assert job_id in table[1] and "2 + 0 / 2" in table[1] and table[1].endswith("success")
    [row] = pps.jobs("p")
    for key in ("id", "pipeline", "state", "output_commit", "data_processed", "data_skipped", "data_failed",
                "data_recovered", "data_total", "started", "finished", "reason", "input_commits"):
        assert key in row
    text = pps.pach("inspect", "job", f"p@{job_id}").out
    assert "State: JOB_SUCCESS" in text and f"Output Commit: p@master={job_id}" in text
    logs = pps.pach("logs", "-p", "p").out
    ids = [d["id"] for d in pps.datums("p", job_id)]
    assert all(f"hello from {i}" in logs for i in ids)
    one = pps.pach("logs", "-p", "p", "-j", job_id, "--datum", ids[0]).out
    assert f"hello from {ids[0]}" in one and f"hello from {ids[1]}" not in one
    bad = pps.pach("inspect", "job", "p@0123", check=False)
    assert bad.code == 1 and "not found" in bad.err


def test_pipeline_lifecycle(pps):
    pps.repo("data")
    spec = pps.spec("p", PFS_DATA, stdin=["cp /pfs/data/* /pfs/out/"])
    pps.pach("create", "pipeline", "-f", str(spec))
    again = pps.pach("create", "pipeline", "-f", str(spec), check=False)
    assert again.code == 1 and "update pipeline" in again.err
    [p] = pps.pach("list", "pipeline", "-o", "json").json_lines()
    assert (p["name"], p["state"], p["version"]) == ("p", "RUNNING", 1)
    assert "NAME" in pps.pach("list", "pipeline").lines()[0]
    assert pps.store().inspect_repo("p")  # the output repo exists
    pps.pach("stop", "pipeline", "p")
    res = pps.pach("run", "pipeline", "-f", str(spec), check=False)
    assert res.code == 1 and "start pipeline p" in res.err
    pps.pach("start", "pipeline", "p")
    pps.put("data", "/a", "1")
    pps.run(spec)
    info = json.loads(pps.pach("inspect", "pipeline", "p", "-o", "json").out)
    assert info["last_job_state"] == "JOB_SUCCESS"
    pps.pach("run", "pipeline", "p")  # by name: the stored spec
    down = pps.spec("q", {"pfs": {"repo": "p", "glob": "/*"}}, stdin=["true"])
    pps.pach("create", "pipeline", "-f", str(down))
    refused = pps.pach("delete", "pipeline", "p", check=False)
    assert refused.code == 1 and "input of q" in refused.err
    pps.pach("delete", "pipeline", "q")
    pps.pach("delete", "pipeline", "p")
    assert pps.pach("list", "pipeline", "-o", "json").json_lines() == []
    assert pps.pach("list", "job", "-o", "json").json_lines() == []
    assert "p" not in {r.name for r in pps.store().list_repos()}


def test_missing_input_repo_refused_before_writing(pps):
    spec = pps.spec("p", {"pfs": {"repo": "nope", "glob": "/*"}}, stdin=["true"])
    res = pps.pach("run", "pipeline", "-f", str(spec), check=False)
    assert res.code == 1 and "input repo 'nope' does not exist" in res.err
    assert pps.pach("list", "pipeline", "-o", "json").json_lines() == []
    assert [r.name for r in pps.store().list_repos()] == []


def test_bad_spec_never_reaches_store(pps, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"pipeline": {"name": "p"}, "transform": {"cmd": ["sh"]},
                               "input": {"pfs": {"repo": "data"}}}))
    res = pps.pach("create", "pipeline", "-f", str(bad), check=False)
    assert res.code == 1 and "glob" in res.err
    assert pps.pach("list", "pipeline", "-o", "json").json_lines() == []
    assert not (tmp_path / "dags").exists() or not any((tmp_path / "dags").iterdir())


@pytest.mark.parametrize("pin", [True, False])
def test_run_pins_commit(pps, pin):
    pps.repo("data")
    pps.put("data", "/a", "1")
    first = pps.head("data")
    pps.put("data", "/b", "2")
    spec = pps.spec("p", PFS_DATA, stdin=["cp /pfs/data/* /pfs/out/"])
    args = ["-c", f"data@{first}"] if pin else []
    _, job = pps.run(spec, *args)
    assert sorted(pps.files("p")) == (["/a"] if pin else ["/a", "/b"])
    assert job["input_commits"][0]["id"] == (first if pin else pps.head("data"))


def test_bad_pinned_commit_refused_before_writing(pps):
    pps.repo("data")
    pps.put("data", "/a", "1")
    spec = pps.spec("p", PFS_DATA, stdin=["cp /pfs/data/* /pfs/out/"])
    res = pps.pach("run", "pipeline", "-f", str(spec), "-c", "data@" + "0" * 32, check=False)
    assert res.code == 1 and "not found in input repo 'data'" in res.err
    res = pps.pach("run", "pipeline", "-f", str(spec), "-c", "other@" + "0" * 32, check=False)
    assert res.code == 1 and "not an input of the pipeline" in res.err
    assert pps.pach("list", "pipeline", "-o", "json").json_lines() == []


def test_create_update_delete_pipeline_manage_dags_folder(pps, tmp_path):
    pps.repo("data")
    dags = tmp_path / "dags"
    spec = pps.spec("p", PFS_DATA, stdin=["cp /pfs/data/* /pfs/out/"])
    pps.pach("create", "pipeline", "-f", str(spec))
    installed = [f for f in dags.rglob("*") if f.is_file()]
    assert len(installed) == 1 and '"p"' in installed[0].read_text()
    spec2 = pps.spec("p", PFS_DATA, stdin=["cp /pfs/data/* /pfs/out/", "true"])
    pps.pach("update", "pipeline", "-f", str(spec2))
    assert [f.read_text() for f in dags.rglob("*") if f.is_file()] == [spec2.read_text()]
    assert json.loads(pps.pach("inspect", "pipeline", "p", "-o", "json").out)["version"] == 2
    pps.pach("delete", "pipeline", "p")
    assert [f for f in dags.rglob("*") if f.is_file()] == []


def test_inspect_datum_with_log_and_skipped_state(pps):
    pps.repo("data")
    pps.put("data", "/a", "1")
    spec = pps.spec("p", PFS_DATA, stdin=["echo processing $data", "cp /pfs/data/* /pfs/out/"])
    first, _ = pps.run(spec)
    pps.put("data", "/b", "2")
    second, job = pps.run(spec)
    assert (job["data_processed"], job["data_skipped"]) == (1, 1)
    by_path = {d["files"][0]["path"]: d for d in pps.datums("p", second)}
    assert (by_path["/a"]["state"], by_path["/b"]["state"]) == ("SKIPPED", "SUCCESS")
    a = json.loads(pps.pach("inspect", "datum", f"p@{second}", by_path["/a"]["id"][:12], "-o", "json").out)
    assert a["state"] == "SKIPPED" and a["job"] == first and "processing /pfs/data/a" in a["log"]
    text = pps.pach("inspect", "datum", f"p@{second}", by_path["/b"]["id"]).out
    assert "processing /pfs/data/b" in text
    missing = pps.pach("inspect", "datum", f"p@{second}", "ffff", check=False)
    assert missing.code == 1 and "not found" in missing.err


def test_downstream_of_failed_job_is_unrunnable(pps):
    pps.repo("data")
    pps.put("data", "/a", "1")
    a_bad = pps.spec("a", PFS_DATA, stdin=["exit 1"])
    b = pps.spec("b", {"pfs": {"repo": "a", "glob": "/*"}}, stdin=["cp /pfs/a/* /pfs/out/"])
    a_id, _ = pps.run(a_bad, expect_code=1)
    _, b_job = pps.run(b, expect_code=1)
    assert b_job["state"] == "JOB_UNRUNNABLE"
    assert f"input commit a@{a_id} has an error" in b_job["reason"]
    assert pps.commits("b")[0].error == b_job["reason"]
    a_ok = pps.spec("a", PFS_DATA, stdin=["cp /pfs/data/* /pfs/out/"])
    pps.pach("update", "pipeline", "-f", str(a_ok))
    pps.run(a_ok)
    _, b_job = pps.run(b)
    assert b_job["state"] == "JOB_SUCCESS" and pps.files("b") == {"/a": b"1"}


def test_run_reprocess_and_multi_pipeline_file(pps, tmp_path):
    pps.repo("data")
    pps.put("data", "/a", "1")
    both = tmp_path / "both.yaml"
    both.write_text(
        "pipeline: {name: up}\ntransform: {cmd: [sh], stdin: ['cp /pfs/data/* /pfs/out/']}\n"
        "input: {pfs: {repo: data, glob: /*}}\n---\n"
        "pipeline: {name: down}\ntransform: {cmd: [sh], stdin: ['cp /pfs/up/* /pfs/out/']}\n"
        "input: {pfs: {repo: up, glob: /*}}\n")
    res = pps.pach("run", "pipeline", "-f", str(both))
    up_id, down_id = res.lines()
    assert up_id == down_id == pps.head("data")
    assert pps.files("down") == {"/a": b"1"}
    res = pps.pach("run", "pipeline", "up", "--reprocess")
    job = pps.job("up", res.lines()[0])
    assert (job["data_processed"], job["data_skipped"]) == (1, 0)
    res = pps.pach("run", "pipeline", "up")
    job = pps.job("up", res.lines()[0])
    assert (job["data_processed"], job["data_skipped"]) == (0, 1)


@pytest.mark.s3
def test_jobs_on_s3_store(s3_store_url, tmp_path, monkeypatch):
    """The same job flow with the store in S3 (SeaweedFS): records, CAS updates, output commits."""
    from tests.fixtures.cli import Cli
    from tests.jobs.conftest import Pps

    monkeypatch.setenv("PACH_AIRFLOW_DAGS_FOLDER", str(tmp_path / "dags"))
    pps = Pps(Cli(s3_store_url), tmp_path)
    pps.repo("data")
    pps.commit("data", [{"put": "/a", "content": "1"}, {"put": "/b", "content": "2"}])
    spec = pps.spec("p", PFS_DATA, stdin=["cp /pfs/data/* /pfs/out/"])
    first, job = pps.run(spec)
    assert (job["state"], job["data_processed"]) == ("JOB_SUCCESS", 2)
    pps.delete("data", "/a")
    pps.put("data", "/c", "3")
    second, job = pps.run(spec)
    assert (job["data_processed"], job["data_skipped"], job["data_total"]) == (1, 1, 2)
    assert pps.files("p") == {"/b": b"2", "/c": b"3"}
    assert [j["id"] for j in pps.jobs("p")] == [second, first]


def test_downstream_created_before_upstream_ran(pps):
    pps.repo("data")
    pps.put("data", "/a", "1")
    a = pps.spec("a", PFS_DATA, stdin=["cp /pfs/data/* /pfs/out/"])
    b = pps.spec("b", {"pfs": {"repo": "a", "glob": "/*"}}, stdin=["cp /pfs/a/* /pfs/out/"])
    pps.pach("create", "pipeline", "-f", str(a))
    pps.pach("create", "pipeline", "-f", str(b))
    _, job = pps.run(b)  # upstream never ran: an empty job, and no commit appears in a
    assert (job["state"], job["data_total"]) == ("JOB_SUCCESS", 0)
    assert pps.commits("a") == []
    a_id, _ = pps.run(a)
    assert [c.id for c in pps.commits("a")] == [a_id]
    _, job = pps.run(b)
    assert job["data_processed"] == 1 and pps.files("b") == {"/a": b"1"}


def test_stop_job_kills_running_job(pps):
    pps.repo("data")
    pps.commit("data", [{"put": f"/f{i}", "content": str(i)} for i in range(3)])
    spec = pps.spec("p", PFS_DATA, stdin=["sleep 600"])
    proc = subprocess.Popen([sys.executable, "-m", "pach_airflow", "--store", pps.pach.store_url, "run",
                             "pipeline", "-f", str(spec)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        running = []
        while not running and time.monotonic() < deadline:
            time.sleep(0.2)
            running = [j for j in pps.jobs() if j["state"] == "JOB_RUNNING"]
        assert running, "the job never started"
        pps.pach("stop", "job", f"p@{running[0]['id']}")
        _, err = proc.communicate(timeout=300)  # the datums sleep 600 s: only the kill ends the run
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, err.decode()
    job = pps.job("p", running[0]["id"])
    assert job["state"] == "JOB_KILLED" and "stop job" in job["reason"]
    assert pps.commits("p") == []  # the output branch is left as it was
    again = pps.pach("stop", "job", f"p@{running[0]['id']}", check=False)
    assert again.code == 1 and "JOB_KILLED already" in again.err


def test_two_concurrent_runs_of_one_pipeline(pps):
    """Two ``run pipeline`` processes at once: both jobs get their own id (one takes the input commit's
    global id, the other a fresh one), neither settles the other as dead, both succeed, and the output
    branch ends with two commits holding the right files."""
    pps.repo("data")
    pps.commit("data", [{"put": f"/f{i}", "content": str(i)} for i in range(3)])
    spec = pps.spec("p", PFS_DATA, stdin=["cp /pfs/data/* /pfs/out/", "sleep 0.3"])
    pps.pach("create", "pipeline", "-f", str(spec))
    argv = [sys.executable, "-m", "pach_airflow", "--store", pps.pach.store_url, "run", "pipeline", "p"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e.decode() for _, e in outs]
    ids = sorted(o.decode().strip() for o, _ in outs)
    assert len(set(ids)) == 2 and pps.head("data") in ids
    assert {j["id"]: j["state"] for j in pps.jobs("p")} == {i: "JOB_SUCCESS" for i in ids}
    assert sorted(c.id for c in pps.commits("p")) == ids
    assert pps.files("p") == {f"/f{i}": str(i).encode() for i in range(3)}
