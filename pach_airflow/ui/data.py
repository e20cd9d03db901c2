"""What the UI shows, read from the store: repos, commits, provenance, pipelines, jobs, datums, lineage.

Every function takes an open :class:`~pach_airflow.pfs.Store` and returns plain JSON-able dicts, so the
JSON API returns them as they are and the HTML pages render the same dicts. Job and datum data come from
the records whose layout ``docs/architecture.md`` fixes (``pps/pipelines/<name>``,
``pps/jobs/<pipeline>/<job>`` with its ``sets/``, ``results/`` and ``datums`` index); reading them here,
rather than through a second copy of the job logic, keeps the UI a pure reader.

Nothing here imports Airflow: the links between a job and its DAG run are in :mod:`.runs`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any

from pach_airflow.errors import NotFound
from pach_airflow.ui import lineage as lin

log = logging.getLogger(__name__)

MAX_FILES = 500  # files listed on a commit page; the rest is counted, not listed
MAX_COMMITS = 100
LOG_TAIL = 16 * 1024  # of a datum's log, shown on the job page (the record keeps 64 KiB)
NO_JOB_YET = "NO JOB YET"  # a pipeline with a DAG whose first job has not planned (no record yet)


# -- the store ---------------------------------------------------------------------------------------

def resolve_store_url(explicit: str | None = None) -> str | None:
    """The store URL by the Airflow side's rule (:func:`pach_airflow.airflow_config.store_url`:
    ``[pach_airflow] store``, else ``$PACH_AIRFLOW_STORE``), unless ``explicit``; ``None`` means the
    store's own default. Read at request time, so a changed setting needs no restart of the API server."""
    if explicit:
        return explicit
    from pach_airflow import airflow_config

    return airflow_config.store_url()


_stores: dict[str | None, Any] = {}
_stores_lock = threading.Lock()


def get_store(url: str | None) -> Any:
    """An open store for ``url`` (with the ``aws_conn_id`` connection applied for S3), opened once per URL
    and process."""
    with _stores_lock:
        if url not in _stores:
            from pach_airflow import airflow_config

            _stores[url] = airflow_config.open_store(url)
        return _stores[url]


_dag_specs: tuple[float, list[dict[str, Any]]] = (0.0, [])
DAG_SPECS_TTL = 15.0  # seconds a read of the dags folder's spec files is reused


def dag_specs() -> list[dict[str, Any]]:
    """Normalised specs of the pipelines in Airflow's dags folder (what became DAGs), so that pipelines
    which have not run yet (no ``pps/pipelines`` record) still show in the lineage and the lists.

    Read with the loader's own reader (bad files are skipped: the DAG list shows them) and reused for
    a few seconds, since every page asks.
    """
    global _dag_specs
    now = time.monotonic()
    if now - _dag_specs[0] < DAG_SPECS_TTL:
        return _dag_specs[1]
    try:
        from pach_airflow import loader
        from pach_airflow.spec import dump_spec

        specs = [dump_spec(s) for f in loader.read_spec_folder(loader.default_dags_folder()) for s in f.specs]
    except Exception as exc:  # noqa: BLE001 - no dags folder here: the store's records still count
        log.debug("no specs from the dags folder: %s", exc)
        specs = []
    _dag_specs = (now, specs)
    return specs


# Shown inline in the browser; any other file is a download (it could be HTML or SVG with scripts).
INLINE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                ".webp": "image/webp", ".txt": "text/plain", ".csv": "text/plain", ".json": "text/plain",
                ".log": "text/plain", ".md": "text/plain", ".yaml": "text/plain", ".yml": "text/plain",
                ".tsv": "text/plain"}


def file_media_type(path: str) -> tuple[str, bool]:
    """``(media type, inline?)`` for serving a repo file to a browser."""
    suffix = ("." + path.rsplit(".", 1)[-1].lower()) if "." in path.rsplit("/", 1)[-1] else ""
    if suffix in INLINE_TYPES:
        media = INLINE_TYPES[suffix]
        return (media + "; charset=utf-8" if media == "text/plain" else media), True
    return "application/octet-stream", False


# -- helpers -----------------------------------------------------------------------------------------

def as_dict(obj: Any) -> dict[str, Any]:
    """A record of any shape the modules hand out (dataclass with ``to_dict``, pydantic, dict) as a dict."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    for meth in ("to_dict", "model_dump"):
        fn = getattr(obj, meth, None)
        if callable(fn):
            return dict(fn())
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    return dict(vars(obj))


def get_record(store: Any, key: str) -> Any | None:
    try:
        return store.get_record(key)
    except NotFound:
        return None


def duration_s(started: Any, finished: Any) -> float | None:
    """Seconds between two ISO-8601 timestamps (or epoch seconds); ``None`` if either is missing."""
    a, b = _ts(started), _ts(finished)
    return round(b - a, 3) if a is not None and b is not None else None


def _ts(v: Any) -> float | None:
    if v is None or v == "":
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return datetime.fromisoformat(str(v)).timestamp()
    except ValueError:
        return None


# -- pipelines ---------------------------------------------------------------------------------------

def pipeline_records(store: Any) -> dict[str, dict[str, Any]]:
    """``{pipeline name: record}`` of the pipelines created in the store (``pps/pipelines/*``)."""
    from pach_airflow import jobs

    return {p.name: p.to_dict() for p in jobs.list_pipelines(store)}


def pipeline_specs(store: Any, extra_specs: Iterable[Mapping[str, Any]] = ()) -> dict[str, dict[str, Any]]:
    """Normalised specs by pipeline name: the store's records, plus ``extra_specs`` (e.g. spec files in
    the DAGs folder) for pipelines that have not run yet."""
    specs: dict[str, dict[str, Any]] = {}
    for spec in extra_specs:
        name = (spec.get("pipeline") or {}).get("name")
        if name:
            specs[name] = dict(spec)
    for name, rec in pipeline_records(store).items():
        if rec.get("spec"):
            specs[name] = rec["spec"]
    return specs


def pipeline_inputs(spec: Mapping[str, Any]) -> list[str]:
    return sorted({repo for repo, _ in lin.iter_input_repos(spec.get("input"), _name(spec))})


def _name(spec: Mapping[str, Any]) -> str:
    return str((spec.get("pipeline") or {}).get("name") or "")


def list_pipelines(store: Any, extra_specs: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    recs = pipeline_records(store)
    rows = []
    for name, spec in sorted(pipeline_specs(store, extra_specs).items()):
        rec = recs.get(name, {})
        jobs = list_jobs(store, name, limit=1)
        rows.append({
            "name": name,
            "state": rec.get("state", NO_JOB_YET),
            "description": spec.get("description", ""),
            "inputs": pipeline_inputs(spec),
            "output_branch": spec.get("output_branch") or "master",
            "image": (spec.get("transform") or {}).get("image", ""),
            "created": rec.get("created"),
            "updated": rec.get("updated"),
            "version": rec.get("version"),
            "last_job": jobs[0] if jobs else None,
        })
    return rows


def inspect_pipeline(store: Any, name: str, extra_specs: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    specs = pipeline_specs(store, extra_specs)
    if name not in specs:
        raise NotFound(f"pipeline {name!r} not found: create it with 'pach-airflow create pipeline -f SPEC'")
    rec = pipeline_records(store).get(name, {})
    return {
        "name": name,
        "state": rec.get("state", NO_JOB_YET),
        "created": rec.get("created"),
        "updated": rec.get("updated"),
        "version": rec.get("version"),
        "spec": specs[name],
        "inputs": pipeline_inputs(specs[name]),
        "jobs": list_jobs(store, name, limit=MAX_COMMITS),
    }


# -- repos and commits -------------------------------------------------------------------------------

def list_repos(store: Any) -> list[dict[str, Any]]:
    pipelines = set(pipeline_records(store))
    rows = []
    for info in store.list_repos():
        d = as_dict(info)
        d["pipeline"] = d.get("name") in pipelines
        d["branches"] = [b if isinstance(b, str) else as_dict(b).get("name") for b in d.get("branches") or []]
        rows.append(d)
    rows.sort(key=lambda r: r.get("name", ""))
    return rows


def commit_row(store: Any, commit: Any, pipelines: set[str]) -> dict[str, Any]:
    """A commit as the UI shows it: its fields plus ``job`` (the job that made it) and ``duration``."""
    d = as_dict(commit)
    d["job"] = None
    if d.get("repo") in pipelines and d.get("origin") == "AUTO":
        # A job's id is its output commit's id (Pachyderm's global ids).
        d["job"] = {"pipeline": d["repo"], "id": d["id"]}
    d["duration"] = duration_s(d.get("started"), d.get("finished"))
    return d


def inspect_repo(store: Any, repo: str, branch: str | None = None, limit: int = MAX_COMMITS) -> dict[str, Any]:
    info = as_dict(store.inspect_repo(repo))
    pipelines = set(pipeline_records(store))
    branches = [as_dict(b) for b in store.list_branches(repo)]
    commits = [commit_row(store, c, pipelines) for c in store.list_commits(repo, branch, limit=limit)]
    info["branches"] = branches
    info["commits"] = commits
    info["pipeline"] = repo in pipelines
    info["branch"] = branch
    info["downstream"] = sorted(n for n, spec in pipeline_specs(store).items() if repo in pipeline_inputs(spec))
    return info


def inspect_commit(store: Any, repo: str, ref: str, *, max_files: int = MAX_FILES) -> dict[str, Any]:
    """A commit with its files, provenance (each checked), subvenance (downstream commits computed from it)
    and the job that made it."""
    pipelines = set(pipeline_records(store))
    d = commit_row(store, store.inspect_commit(repo, ref), pipelines)
    files: list[dict[str, Any]] = []
    total = 0
    for f in store.walk(repo, d["id"]):
        total += 1
        if len(files) < max_files:
            files.append(as_dict(f))
    d["files"] = files
    d["files_total"] = total
    prov = []
    for p in d.get("provenance") or []:
        p = dict(p)
        try:
            pc = store.inspect_commit(p["repo"], p["id"])
            p["exists"] = True
            p["origin"] = as_dict(pc).get("origin")
        except NotFound:
            p["exists"] = False
        prov.append(p)
    d["provenance"] = prov
    d["subvenance"] = subvenance(store, repo, d["id"])
    if d["job"]:
        d["job"] = job_summary(store, repo, d["id"]) or d["job"]
    return d


def subvenance(store: Any, repo: str, commit_id: str, *, per_repo: int = MAX_COMMITS) -> list[dict[str, Any]]:
    """Commits of downstream pipelines' output repos whose provenance names this commit.

    Looks only at the output repos of pipelines that read ``repo``, and at their newest ``per_repo``
    commits: the UI needs the recent ones, not a scan of all history.
    """
    out = []
    for name, spec in sorted(pipeline_specs(store).items()):
        if repo not in pipeline_inputs(spec):
            continue
        try:
            for c in store.list_commits(name, None, limit=per_repo):
                cd = as_dict(c)
                if any(p.get("repo") == repo and p.get("id") == commit_id for p in cd.get("provenance") or []):
                    out.append({"repo": name, "branch": cd.get("branch"), "id": cd["id"]})
        except NotFound:
            continue
    return out


# -- jobs and datums ---------------------------------------------------------------------------------

def job_record(store: Any, pipeline: str, job_id: str) -> dict[str, Any] | None:
    """The whole stored job record, or ``None`` if there is no such job."""
    from pach_airflow import jobs

    try:
        return dict(jobs.inspect_job(store, pipeline, job_id).record)
    except NotFound:
        return None


def job_summary(store: Any, pipeline: str, job_id: str, record: Mapping[str, Any] | None = None) -> dict | None:
    """The job as the UI shows it (no pinned spec, input commits as ``[{repo, branch, id}]``, its
    duration); ``None`` if there is no such job."""
    from pach_airflow import jobs

    rec = dict(record) if record is not None else job_record(store, pipeline, job_id)
    if rec is None:
        return None
    out = jobs.JobInfo.from_record(rec).to_dict()
    out.setdefault("pipeline", pipeline)
    out.setdefault("id", job_id)
    out["input_commits"] = _commit_refs(out.get("input_commits"))
    out["set_ids"] = list(rec.get("set_ids") or [])
    out["duration"] = duration_s(out.get("started"), out.get("finished"))
    return out


def _commit_refs(value: Any) -> list[dict[str, Any]]:
    """Input commits as ``[{repo, branch, id}]``, whether recorded as such a list or as ``{repo: id}``."""
    if isinstance(value, Mapping):
        return [{"repo": str(k).partition("@")[0], "branch": str(k).partition("@")[2] or None, "id": v}
                for k, v in value.items()]
    return [{"repo": v.get("repo"), "branch": v.get("branch"), "id": v.get("id") or v.get("commit")}
            for v in value or [] if isinstance(v, Mapping)]


def list_jobs(store: Any, pipeline: str | None = None, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Jobs newest first, of one pipeline or of all."""
    from pach_airflow import jobs

    try:
        infos = jobs.list_jobs(store, pipeline)
    except NotFound:
        return []
    if limit:
        infos = infos[:limit]
    return [s for j in infos if (s := job_summary(store, j.pipeline, j.id, j.record)) is not None]


def inspect_job(store: Any, pipeline: str, job_id: str) -> dict[str, Any]:
    """A job with every datum (state, input files, its datum set, tries, timing, log tail)."""
    rec = job_record(store, pipeline, job_id)
    if rec is None:
        raise NotFound(f"job {pipeline}@{job_id} not found: list the pipeline's jobs with "
                       f"'pach-airflow list job -p {pipeline}'")
    job = job_summary(store, pipeline, job_id, rec) or {}
    job["datums"] = job_datums(store, pipeline, job_id, rec)
    job["spec"] = rec.get("spec")
    return job


def job_datums(store: Any, pipeline: str, job_id: str, record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every datum of a job, as :func:`pach_airflow.jobs.list_job_datums` gives it, plus what a person
    looks for on the job page: the datum set it ran in (= the map index of its ``process`` task), its
    duration, how many files it wrote and the tail of its log."""
    from pach_airflow import jobs

    sets: dict[str, str] = {}
    try:
        plan = store.get_bytes(jobs.plan_key(pipeline, job_id))
    except NotFound:
        plan = b""
    for line in plan.decode().splitlines():
        if line.strip():
            d = json.loads(line)
            if d.get("set") is not None:
                sets[d["id"]] = str(d["set"])
    results: dict[str, dict[str, Any]] = {}
    for set_id in record.get("set_ids") or []:
        for r in (get_record(store, jobs.result_key(pipeline, job_id, set_id)) or {}).get("datums") or []:
            results[r["id"]] = r
    rows = []
    for d in jobs.list_job_datums(store, pipeline, job_id):
        row = dict(d)
        r = results.get(d["id"], {})
        row["set"] = sets.get(d["id"])
        row["duration"] = duration_s(row.get("started"), row.get("finished"))
        row["log"] = (r.get("log") or "")[-LOG_TAIL:]
        row["outputs"] = len(d.get("outputs") or r.get("outputs") or [])
        if row.get("job") == job_id:
            row.pop("job")
        else:
            row["processed_by"] = row.pop("job", None)
        rows.append(row)
    rows.sort(key=lambda r: (r.get("set") is None, _set_order(r.get("set")), r["id"]))
    return rows


def _set_order(set_id: str | None) -> tuple[int, str]:
    return (int(set_id), "") if set_id and set_id.isdigit() else (1 << 30, set_id or "")


def datum_counts(datums: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in datums:
        counts[d.get("state") or "UNKNOWN"] = counts.get(d.get("state") or "UNKNOWN", 0) + 1
    return dict(sorted(counts.items()))


# -- lineage -----------------------------------------------------------------------------------------

def lineage(store: Any, extra_specs: Iterable[Mapping[str, Any]] = (), href: Any = None) -> lin.Lineage:
    repos = [as_dict(r).get("name", "") for r in store.list_repos()]
    states = {name: rec["last_job_state"] for name, rec in pipeline_records(store).items()
              if rec.get("last_job_state")}
    return lin.build_lineage(pipeline_specs(store, extra_specs).values(), [r for r in repos if r], href, states)
