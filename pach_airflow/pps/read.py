"""Reading jobs, datums and logs: what ``list job``, ``inspect job``, ``list/inspect datum`` and ``logs``
show."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pach_airflow.errors import JobError, NotFound, StoreError
from pach_airflow.pps.pipelines import list_pipelines
from pach_airflow.pps.records import (
    DATUM_SKIPPED,
    DATUM_STARTING,
    DATUM_SUCCESS,
    JobInfo,
    _get_bytes,
    _get_record,
    _list_job_ids,
    _read_jsonl,
    index_key,
    job_key,
    plan_key,
    result_key,
)

if TYPE_CHECKING:
    from pach_airflow.pfs import Store


def inspect_job(store: Store, pipeline: str, job_id: str) -> JobInfo:
    rec = _get_record(store, job_key(pipeline, job_id))
    if rec is None:
        raise NotFound(f"job {pipeline}@{job_id} not found; list jobs with: pach-airflow list job -p {pipeline}")
    return JobInfo.from_record(rec)


def list_jobs(store: Store, pipeline: str | None = None) -> list[JobInfo]:
    """Jobs newest first, of one pipeline or of all."""
    names = [pipeline] if pipeline else [p.name for p in list_pipelines(store)]
    out: list[JobInfo] = []
    for name in names:
        for jid in _list_job_ids(store, name):
            rec = _get_record(store, job_key(name, jid))
            if rec is not None:
                out.append(JobInfo.from_record(rec))
    out.sort(key=lambda j: (j.record.get("created") or "", j.id), reverse=True)
    return out


def _datum_view(line: Mapping[str, Any], job_id: str) -> dict:
    state = line.get("state") or DATUM_STARTING
    if state == DATUM_SUCCESS and line.get("job") not in (None, job_id):
        state = DATUM_SKIPPED
    return {"id": line["id"], "state": state, "files": line.get("files", []), "hash": line.get("hash"),
            "started": line.get("started"), "finished": line.get("finished"), "reason": line.get("reason"),
            "job": line.get("job") or job_id, "tries": line.get("tries"),
            "outputs": [o[0] for o in line.get("outputs") or ()]}


def list_job_datums(store: Store, pipeline: str, job_id: str) -> Iterator[dict]:
    """The datums of a job sorted by id, each ``{"id", "state", "files", "hash", "started", "finished",
    "reason", ...}``; carried-over datums show SKIPPED; a running job's unfinished datums STARTING."""
    inspect_job(store, pipeline, job_id)
    index = _get_bytes(store, index_key(pipeline, job_id))
    if index is not None:
        for line in _read_jsonl(index):
            yield _datum_view(line, job_id)
        return
    results: dict[str, dict] = {}
    rec = _get_record(store, job_key(pipeline, job_id)) or {}
    for sid in rec.get("set_ids", []):
        res = _get_record(store, result_key(pipeline, job_id, sid))
        for d in (res or {}).get("datums", []):
            results[d["id"]] = d
    for line in _read_jsonl(_get_bytes(store, plan_key(pipeline, job_id))):
        if line.get("set") is None:
            yield _datum_view({**line, "state": DATUM_SUCCESS}, job_id)
        else:
            res = results.get(line["id"], {})
            yield _datum_view({**line, **{k: v for k, v in res.items() if k != "outputs"},
                               "job": job_id, "outputs": res.get("outputs") or []}, job_id)


def inspect_datum(store: Store, pipeline: str, job_id: str, datum_id: str) -> dict:
    """One datum of a job, with its log when this job processed it."""
    found = [d for d in list_job_datums(store, pipeline, job_id) if d["id"].startswith(datum_id)]
    exact = [d for d in found if d["id"] == datum_id]
    if len(found) > 1 and not exact:
        raise JobError(f"datum id prefix {datum_id!r} matches {len(found)} datums of job {pipeline}@{job_id}; "
                       f"give more of the id")
    for d in exact or found:
        # the log of the job that processed it (a skipped datum's log is in an earlier job)
        logs = list(job_logs(store, pipeline, d["job"], datum_id=d["id"]))
        return {**d, "log": logs[0]["log"] if logs else ""}
    raise NotFound(f"datum {datum_id} not found in job {pipeline}@{job_id}; "
                   f"list them with: pach-airflow list datum {pipeline}@{job_id}")


def job_logs(store: Store, pipeline: str, job_id: str | None = None, *, datum_id: str | None = None
             ) -> Iterator[dict]:
    """The user code's logs, one entry per datum this job processed: ``{"job", "datum", "state", "log"}``.
    ``job_id`` defaults to the pipeline's newest job. The whole log is read from its blob when the
    result record only holds its tail."""
    if job_id is None:
        jobs = list_jobs(store, pipeline)
        if not jobs:
            raise NotFound(f"pipeline {pipeline} has no jobs yet")
        job_id = jobs[0].id
    rec = inspect_job(store, pipeline, job_id).record
    for sid in rec.get("set_ids", []):
        res = _get_record(store, result_key(pipeline, job_id, sid))
        for d in (res or {}).get("datums", []):
            if datum_id and not d["id"].startswith(datum_id):
                continue
            log = d.get("log") or ""
            if d.get("log_blob"):
                try:
                    with store.open_blob(d["log_blob"]) as fh:
                        log = fh.read().decode(errors="replace")
                except StoreError:
                    pass
            yield {"job": job_id, "datum": d["id"], "state": d.get("state"), "log": log}
