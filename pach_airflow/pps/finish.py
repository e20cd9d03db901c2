"""Finishing a job: the output commit (previous good output − removed/changed + new), clash checks,
egress, counters, the datum index that is the next job's skip base, and the final job record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pach_airflow.errors import JobError, NotFound, StoreError
from pach_airflow.pps.records import (
    DATUM_FAILED,
    DATUM_RECOVERED,
    DATUM_STARTING,
    DATUM_SUCCESS,
    JOB_EGRESSING,
    JOB_FAILURE,
    JOB_FINISHING,
    JOB_KILLED,
    JOB_SUCCESS,
    TERMINAL_STATES,
    JobInfo,
    _commit_exists,
    _get_bytes,
    _get_record,
    _jsonl,
    _now,
    _output_branch,
    _parse_time,
    _read_jsonl,
    _seconds,
    _update_job,
    index_key,
    job_key,
    pipeline_key,
    plan_key,
    result_key,
)

if TYPE_CHECKING:
    from pach_airflow.pfs import Store


# What the shim logs when an err_cmd succeeded (worker/shim.py run_err).
_RECOVERY_LOG_LINE = "finished running user error handling code"


def _recovered_then_succeeded(store: Store, res: Mapping[str, Any]) -> bool:
    """A SUCCESS result whose datum had an earlier attempt recovered by ``err_cmd``. Pachyderm's meta
    state then stays RECOVERED (it is never reset, and PROCESSED is the zero value: datum.go:205-213,
    313-317) while the datum counts as processed and its output is uploaded; worker.go:176-179 skips
    only PROCESSED datums, so the next job runs it again.

    The result's ``recovered`` flag says it when the worker records one; otherwise the shim's log
    (its tail in the record, else the whole log blob) shows an err_cmd that finished well."""
    if res.get("state") != DATUM_SUCCESS:
        return False
    if "recovered" in res:
        return bool(res["recovered"])
    if int(res.get("tries") or 1) < 2:
        return False  # err_cmd runs only after a failed attempt
    if _RECOVERY_LOG_LINE in (res.get("log") or ""):
        return True
    if res.get("log_blob"):
        try:
            with store.open_blob(res["log_blob"]) as fh:
                return _RECOVERY_LOG_LINE.encode() in fh.read()
        except StoreError:
            return False
    return False


def _has_output(d: Mapping[str, Any]) -> bool:
    """Whether a datum's outputs go to the output commit: SUCCESS, or RECOVERED with a last attempt
    that succeeded (``processed``)."""
    state = d.get("state")
    return state == DATUM_SUCCESS or (state == DATUM_RECOVERED and bool(d.get("processed")))


def _count(index: Iterable[Mapping[str, Any]], job_id: str) -> dict:
    processed = skipped = failed = recovered = total = 0
    dl = ul = 0
    for d in index:
        total += 1
        state = d.get("state")
        if state == DATUM_SUCCESS and d.get("job") not in (None, job_id):
            skipped += 1
        elif _has_output(d):
            processed += 1
            dl += int(d.get("size") or 0)
            ul += sum(int(o[2]) for o in d.get("outputs") or ())
        elif state == DATUM_FAILED:
            failed += 1
        elif state == DATUM_RECOVERED:
            recovered += 1
    return {"data_processed": processed, "data_skipped": skipped, "data_failed": failed,
            "data_recovered": recovered, "data_total": total, "download_bytes": dl, "upload_bytes": ul}


def find_clash(index: Iterable[Mapping[str, Any]]) -> str | None:
    """The first output clash between successful datums, as a message naming the path and both datums:
    the same path written by two datums, or a file whose path is another output's directory."""
    owner: dict[str, str] = {}
    for d in index:
        if not _has_output(d):
            continue
        for path, *_rest in d.get("outputs") or ():
            other = owner.get(path)
            if other is not None and other != d["id"]:
                a, b = sorted((other, d["id"]))
                return f"duplicate path output by different datums: {path} written by datum {a} and datum {b}"
            owner[path] = d["id"]
    for path, did in owner.items():
        parent = path.rsplit("/", 1)[0]
        while parent:
            other = owner.get(parent)
            if other is not None:
                return (f"file / directory path collision: {parent} is a file of datum {other} and a "
                        f"directory of {path} written by datum {did}")
            parent = parent.rsplit("/", 1)[0]
    return None


def _failed_reason(index: list[dict]) -> str | None:
    failed = [d for d in index if d.get("state") == DATUM_FAILED]
    if not failed:
        return None
    more = f" (and {len(failed) - 1} more datum{'s' if len(failed) > 2 else ''})" if len(failed) > 1 else ""
    first = failed[0]
    why = f": {first['reason']}" if first.get("reason") else ""
    return f"datum {first['id']} failed{why}{more}"


def _output_files(index: Iterable[Mapping[str, Any]]):
    from pach_airflow.pfs import FileInfo

    rows = sorted((p, h, int(s)) for d in index if _has_output(d)
                  for p, h, s in d.get("outputs") or ())
    return [FileInfo(path=p, type="file", size=s, hash=h) for p, h, s in rows]


def _base_files(store: Store, out_repo: str, base_id: str | None):
    if not base_id:
        return []
    return list(store.walk(out_repo, base_id))


def finish_job(store: Store, pipeline: str, job_id: str, *, killed_reason: str | None = None,
               _end_state: str = JOB_KILLED) -> JobInfo:
    """Assemble and write the output commit of a job, then record how the job ended.

    Reads every set's ``results/<set>`` (a missing one means the set did not run: the job fails naming
    it), takes skipped datums' outputs from the plan, checks for output clashes, egresses on success,
    and writes the output commit ``<pipeline>@<job_id>`` on the pipeline's output branch with the input
    commits as provenance. On success the commit holds the new output. On failure (failed datum, clash,
    missing set, egress failure) or when ``killed_reason`` is given (job_timeout), the commit carries the
    error and the content of the last good output, so the branch head shows the error and readers keep
    the last good files; the job ends JOB_FAILURE or JOB_KILLED with the reason. Calling it again on a
    finished job returns the recorded result.

    Counting follows Pachyderm's two phases. The plan puts new datums (absent from the base job) and
    changed ones in separate sets, the latter listed as ``serial_set_ids``. When a new datum failed (or
    a set of new datums left no result), the job fails as Pachyderm's does before its serial phase:
    the changed datums' results are discarded and not counted, unchanged datums are not counted as
    skipped (data_skipped 0), and both are listed STARTING with the reason. ``run_job`` does not even
    start the serial sets then; under Airflow every set is mapped at once, so the changed datums' work
    is done but thrown away here.

    A datum whose err_cmd recovered an attempt and whose last attempt succeeded is recorded RECOVERED
    with ``processed`` set: counted processed, its output uploaded, listed RECOVERED and not skipped by
    the next job (Pachyderm never resets the RECOVERED meta state).
    """
    rec = _get_record(store, job_key(pipeline, job_id))
    if rec is None:
        raise JobError(f"job {pipeline}@{job_id} not found")
    if rec.get("state") in TERMINAL_STATES:
        return JobInfo.from_record(rec)
    spec_dict = rec["spec"]
    out_repo, out_branch = pipeline, _output_branch(spec_dict)
    timeout = _seconds(spec_dict.get("job_timeout"))
    started = _parse_time(rec.get("started"))
    # Runners that are not run_job (Airflow's mapped tasks) cannot be stopped from here; a job that
    # ran past its job_timeout still ends KILLED, as Pachyderm's would have been.
    if (killed_reason is None and timeout and started is not None
            and (datetime.now(UTC) - started).total_seconds() > timeout):
        killed_reason = _timeout_reason(spec_dict)
    plan = _read_jsonl(_get_bytes(store, plan_key(pipeline, job_id)))

    results: dict[str, dict] = {}
    missing_sets: list[str] = []
    for sid in rec.get("set_ids", []):
        res = _get_record(store, result_key(pipeline, job_id, sid))
        if res is None:
            missing_sets.append(sid)
            continue
        for d in res.get("datums", []):
            results[d["id"]] = {**d, "set": sid}

    # Pachyderm's two phases (registry.go:296-316, 381-386): new datums first; if one fails, the job
    # fails before the serial phase that skips unchanged datums and reruns changed ones.
    serial = set(rec.get("serial_set_ids") or ())
    missing_first = [sid for sid in missing_sets if sid not in serial]
    first_failed = next((line["id"] for line in plan if line.get("set") is not None and line["set"] not in serial
                         and results.get(line["id"], {}).get("state") == DATUM_FAILED), None)
    stopped = killed_reason is None and (first_failed is not None or bool(missing_first))
    if stopped:
        missing_sets = missing_first
        why = (f"datum {first_failed} failed" if first_failed else
               f"datum set{'s' if len(missing_first) > 1 else ''} {', '.join(missing_first)} did not run")
        not_run = {"state": DATUM_STARTING, "outputs": [],
                   "reason": f"not run: {why} among the new datums, so the job stopped before the phase "
                             f"that skips unchanged datums and reruns changed ones"}

    index: list[dict] = []
    for line in plan:
        if stopped and (line.get("set") is None or line["set"] in serial):
            index.append({"id": line["id"], "hash": line["hash"], "job": job_id, "files": line["files"],
                          "set": line.get("set"), "size": line.get("size", 0), **not_run})
            continue
        if line.get("set") is None:
            index.append({"id": line["id"], "hash": line["hash"], "state": DATUM_SUCCESS,
                          "job": line.get("job"), "outputs": line.get("outputs", []), "files": line["files"]})
            continue
        res = results.get(line["id"])
        if res is None:
            state, reason = (DATUM_STARTING if killed_reason else DATUM_FAILED), (
                "killed before it ran" if killed_reason else f"datum set {line['set']} left no result")
            if line["set"] in missing_sets and not killed_reason:
                reason = f"datum set {line['set']} did not run"
            entry = {"state": state, "reason": reason}
        else:
            entry = {k: res.get(k) for k in ("state", "reason", "started", "finished", "tries", "log_blob")}
            entry["outputs"] = res.get("outputs") or []
            if _recovered_then_succeeded(store, res):
                entry["state"], entry["processed"] = DATUM_RECOVERED, True
            if not _has_output(entry):
                entry["outputs"] = []  # failed and recovered datums contribute nothing (reference §4.6)
        index.append({"id": line["id"], "hash": line["hash"], "job": job_id, "files": line["files"],
                      "set": line["set"], "size": line.get("size", 0), "outputs": [], **entry})

    counts = _count(index, job_id)
    reason: str | None = None
    state = JOB_SUCCESS
    if killed_reason:
        state, reason = _end_state, killed_reason
    elif missing_sets:
        state = JOB_FAILURE
        reason = (f"datum set{'s' if len(missing_sets) > 1 else ''} {', '.join(missing_sets)} did not run "
                  f"(no results in the store); run the job again")
    else:
        reason = _failed_reason(index)
        if reason is None:
            reason = find_clash(index)
        if reason is not None:
            state = JOB_FAILURE

    egress_result = None
    egress_url = _egress_url(spec_dict)
    if state == JOB_SUCCESS and egress_url:
        _update_job(store, pipeline, job_id, {"state": JOB_EGRESSING})
        from pach_airflow.egress import egress_files

        egress_result = egress_files(store, _output_files(index), egress_url)
        if egress_result["state"] != "SUCCESS":
            state, reason = JOB_FAILURE, f"egress to {egress_url} failed: {egress_result['error']}"

    _update_job(store, pipeline, job_id, {"state": JOB_FINISHING, **counts})
    store.put_bytes(index_key(pipeline, job_id), _jsonl(index))

    provenance = [{"repo": c["repo"], "branch": c["branch"], "id": c["id"]} for c in rec.get("input_commits", [])]
    if not _commit_exists(store, out_repo, job_id):
        if state == JOB_SUCCESS:
            files = _output_files(index)
            error = None
        else:
            files = _base_files(store, out_repo, rec.get("base_job"))
            error = reason
        store.write_commit(out_repo, out_branch, files, commit_id=job_id, origin="AUTO",
                           provenance=provenance, error=error,
                           description=f"output of job {job_id} of pipeline {pipeline}")

    final = {"state": state, "reason": reason, "finished": _now(), **counts, "egress": egress_result,
             "output_commit": {"repo": out_repo, "branch": out_branch, "id": job_id}}
    rec = _update_job(store, pipeline, job_id, final)

    def last(old: dict | None) -> dict:
        if old is None:
            raise NotFound(f"pipeline {pipeline} was deleted")
        new = {**old, "open_jobs": [j for j in old.get("open_jobs", []) if j != job_id]}
        if not (old.get("last_job") and old["last_job"] > job_id):
            new.update(last_job=job_id, last_job_state=state)
        return new

    try:
        store.update_record(pipeline_key(pipeline), last)
    except NotFound:
        pass
    return JobInfo.from_record(rec)


def _timeout_reason(spec_dict: Mapping[str, Any]) -> str:
    return f"job timed out after {spec_dict.get('job_timeout')} (job_timeout)"


def _egress_url(spec_dict: Mapping[str, Any]) -> str | None:
    eg = spec_dict.get("egress") or {}
    for key in ("URL", "url"):
        if eg.get(key):
            return eg[key]
    obj = eg.get("object_storage") or eg.get("objectStorage") or {}
    return obj.get("url") or obj.get("URL") or None
