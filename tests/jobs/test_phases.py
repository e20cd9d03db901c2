"""Pachyderm's two job phases (new datums first; the serial phase that skips unchanged datums and reruns
changed ones only when no new datum failed), RECOVERED datums whose last attempt succeeded, and listing
jobs from their markers.

The repro of the conformance report (H8-B5): d5 holds /a and /b; the user code fails on content "bad";
the first job succeeds; one commit then puts /c = "bad" (new) and /b = "22" (changed).
"""

from __future__ import annotations

import json

from pach_airflow import jobs

STDIN = ["grep -q bad $d5 && exit 1", "cp $d5 /pfs/out/"]
D5 = {"pfs": {"repo": "d5", "glob": "/*"}}


def _spec(name: str = "p") -> dict:
    return {"pipeline": {"name": name}, "transform": {"cmd": ["sh"], "stdin": STDIN}, "datum_tries": 1,
            "input": D5}


def _first_job_then_bad_commit(pps) -> str:
    pps.repo("d5")
    pps.commit("d5", [{"put": "/a", "content": "1"}, {"put": "/b", "content": "2"}])
    job1, job = pps.run(pps.spec("p", D5, stdin=STDIN, datum_tries=1))
    assert job["state"] == "JOB_SUCCESS"
    pps.commit("d5", [{"put": "/c", "content": "bad"}, {"put": "/b", "content": "22"}])
    return job1


def test_plan_puts_new_and_changed_datums_in_separate_sets(pps):
    _first_job_then_bad_commit(pps)
    store = pps.store()
    planned = jobs.plan_job(store, _spec())
    assert planned.data_total == 3 and planned.data_skipped == 1
    assert len(planned.serial_set_ids) == 1 and planned.serial_set_ids[-1] == planned.set_ids[-1]
    assert jobs.inspect_job(store, "p", planned.job_id).record["serial_set_ids"] == planned.serial_set_ids
    serial = store.get_record(jobs.set_key("p", planned.job_id, planned.serial_set_ids[0]))
    first = [store.get_record(jobs.set_key("p", planned.job_id, s))
             for s in planned.set_ids if s not in planned.serial_set_ids]
    paths = lambda rec: [i["path"] for d in rec["datums"] for i in d["inputs"]]
    assert paths(serial) == ["/b"]
    assert [p for rec in first for p in paths(rec)] == ["/c"]


def test_run_job_stops_before_the_serial_phase_when_a_new_datum_fails(pps):
    _first_job_then_bad_commit(pps)
    before = pps.files("p")
    job_id, job = pps.run(pps.spec("p", D5, stdin=STDIN, datum_tries=1), expect_code=1)
    assert job["state"] == "JOB_FAILURE"
    assert (job["data_processed"], job["data_skipped"], job["data_failed"], job["data_total"]) == (0, 0, 1, 3)
    store = pps.store()
    rec = jobs.inspect_job(store, "p", job_id).record
    # the changed datum's set never ran: no result record
    assert rec["serial_set_ids"]
    assert not any(_has_record(store, jobs.result_key("p", job_id, s)) for s in rec["serial_set_ids"])
    states = {d["state"] for d in jobs.list_job_datums(store, "p", job_id)}
    assert states == {"FAILED", "STARTING"}
    assert pps.files("p") == before  # the head carries the error and the last good content


def _has_record(store, key: str) -> bool:
    from pach_airflow.errors import NotFound

    try:
        store.get_record(key)
        return True
    except NotFound:
        return False


def test_finish_discards_changed_results_when_all_sets_ran_at_once(pps):
    """Under Airflow every set is mapped at once: the changed datum /b runs, but finish_job counts the
    job as Pachyderm does and throws its output away."""
    job1 = _first_job_then_bad_commit(pps)
    store = pps.store()
    planned = jobs.plan_job(store, _spec())
    for sid in planned.set_ids:  # what the mapped tasks do, serial sets included
        jobs.process_set(store, "p", planned.job_id, sid)
    assert _has_record(store, jobs.result_key("p", planned.job_id, planned.serial_set_ids[0]))
    info = jobs.finish_job(store, "p", planned.job_id)
    rec = info.record
    assert info.state == "JOB_FAILURE" and info.reason.startswith("datum ")
    assert (rec["data_processed"], rec["data_skipped"], rec["data_failed"], rec["data_total"]) == (0, 0, 1, 3)
    datums = list(jobs.list_job_datums(store, "p", planned.job_id))
    assert sorted(d["state"] for d in datums) == ["FAILED", "STARTING", "STARTING"]
    assert all("not run" in d["reason"] for d in datums if d["state"] == "STARTING")
    assert pps.files("p") == {"/a": b"1", "/b": b"2"}  # /b = "22" was computed, then discarded
    # The next job takes job 1 (the last good one) as its base: /b is rerun, /a skipped.
    pps.commit("d5", [{"put": "/c", "content": "good"}])
    job3, job = pps.run(pps.spec("p", D5, stdin=STDIN, datum_tries=1))
    assert job["state"] == "JOB_SUCCESS"
    assert jobs.inspect_job(store, "p", job3).record["base_job"] == job1
    assert (job["data_processed"], job["data_skipped"], job["data_total"]) == (2, 1, 3)
    assert pps.files("p") == {"/a": b"1", "/b": b"22", "/c": b"good"}


def test_serial_phase_runs_when_new_datums_succeed(pps):
    pps.repo("d5")
    pps.commit("d5", [{"put": "/a", "content": "1"}, {"put": "/b", "content": "2"}])
    pps.run(pps.spec("p", D5, stdin=STDIN, datum_tries=1))
    pps.commit("d5", [{"put": "/c", "content": "3"}, {"put": "/b", "content": "22"}])
    _job_id, job = pps.run(pps.spec("p", D5, stdin=STDIN, datum_tries=1))
    assert job["state"] == "JOB_SUCCESS"
    assert (job["data_processed"], job["data_skipped"], job["data_total"]) == (2, 1, 3)
    assert pps.files("p") == {"/a": b"1", "/b": b"22", "/c": b"3"}


def test_a_failing_changed_datum_still_counts_skips(pps):
    """Only a new datum's failure stops the job before the serial phase; a changed datum fails in it."""
    pps.repo("d5")
    pps.commit("d5", [{"put": "/a", "content": "1"}, {"put": "/b", "content": "2"}])
    pps.run(pps.spec("p", D5, stdin=STDIN, datum_tries=1))
    pps.commit("d5", [{"put": "/b", "content": "bad"}])
    _job_id, job = pps.run(pps.spec("p", D5, stdin=STDIN, datum_tries=1), expect_code=1)
    assert job["state"] == "JOB_FAILURE"
    assert (job["data_processed"], job["data_skipped"], job["data_failed"], job["data_total"]) == (0, 1, 1, 2)


def test_recorded_recovery_flag_keeps_the_datum_recovered_but_processed(pps):
    """Given a result whose datum the worker flags ``recovered`` with state SUCCESS (err_cmd recovered an
    earlier attempt, the last one succeeded), finish_job does what Pachyderm does with such a meta:
    processed, output uploaded, listed RECOVERED, not skipped next time."""
    pps.repo("d5")
    pps.commit("d5", [{"put": "/a", "content": "1"}])
    store = pps.store()
    spec = {"pipeline": {"name": "p"}, "transform": {"cmd": ["sh"], "stdin": ["cp $d5 /pfs/out/"],
                                                      "err_cmd": ["true"]}, "input": D5}
    planned = jobs.plan_job(store, spec)
    (sid,) = planned.set_ids
    (d,) = store.get_record(jobs.set_key("p", planned.job_id, sid))["datums"]
    blob, size = store.put_blob(b"1")
    store.put_record(jobs.result_key("p", planned.job_id, sid), {
        "pipeline": "p", "job": planned.job_id, "set": sid,
        "datums": [{"id": d["id"], "hash": d["hash"], "state": "SUCCESS", "recovered": True, "reason": None,
                    "tries": 2, "log": "", "log_blob": None, "outputs": [["/a", blob, size]]}]})
    info = jobs.finish_job(store, "p", planned.job_id)
    rec = info.record
    assert info.state == "JOB_SUCCESS"
    assert (rec["data_processed"], rec["data_recovered"], rec["data_failed"]) == (1, 0, 0)
    assert [x["state"] for x in jobs.list_job_datums(store, "p", planned.job_id)] == ["RECOVERED"]
    assert pps.files("p") == {"/a": b"1"}
    # no input change: the next job still runs the datum (only PROCESSED datums are skippable)
    nxt = jobs.plan_job(store, spec)
    assert (nxt.data_to_run, nxt.data_skipped) == (1, 0)


def test_recovery_flag_false_is_plain_success(pps):
    pps.repo("d5")
    pps.commit("d5", [{"put": "/a", "content": "1"}])
    store = pps.store()
    spec = {"pipeline": {"name": "p"}, "transform": {"cmd": ["sh"], "stdin": ["cp $d5 /pfs/out/"]}, "input": D5}
    planned = jobs.plan_job(store, spec)
    (sid,) = planned.set_ids
    (d,) = store.get_record(jobs.set_key("p", planned.job_id, sid))["datums"]
    blob, size = store.put_blob(b"1")
    store.put_record(jobs.result_key("p", planned.job_id, sid), {
        "pipeline": "p", "job": planned.job_id, "set": sid,
        "datums": [{"id": d["id"], "hash": d["hash"], "state": "SUCCESS", "recovered": False, "reason": None,
                    "tries": 2, "log": "finished running user error handling code", "log_blob": None,
                    "outputs": [["/a", blob, size]]}]})
    jobs.finish_job(store, "p", planned.job_id)
    assert [x["state"] for x in jobs.list_job_datums(store, "p", planned.job_id)] == ["SUCCESS"]
    assert jobs.plan_job(store, spec).data_skipped == 1


def test_jobs_are_listed_from_their_markers(pps):
    pps.repo("d5")
    pps.commit("d5", [{"put": "/a", "content": "1"}])
    j1, _ = pps.run(pps.spec("p", D5, stdin=STDIN))
    pps.commit("d5", [{"put": "/b", "content": "2"}])
    j2, _ = pps.run(pps.spec("p", D5, stdin=STDIN))
    store = pps.store()
    assert list(store.list_records("pps/joblist/p/")) == sorted([f"pps/joblist/p/{j1}", f"pps/joblist/p/{j2}"])
    assert [j.id for j in jobs.list_jobs(store, "p")] == [j2, j1]
    assert [j["id"] for j in pps.jobs("p")] == [j2, j1]
    # a pipeline record written before markers existed is listed the old way
    store.update_record(jobs.pipeline_key("p"), lambda old: {k: v for k, v in old.items() if k != "job_markers"})
    store.delete_record(jobs.job_marker_key("p", j1))
    assert [j.id for j in jobs.list_jobs(store, "p")] == [j2, j1]
    # deleting the pipeline deletes its markers too
    pps.pach("delete", "pipeline", "p")
    assert list(store.list_records("pps/joblist/p/")) == []
    assert json.loads(json.dumps([j.id for j in jobs.list_jobs(store)])) == []
