"""Pipeline records: create, update (the salt survives unless reprocess), list, inspect, stop/start, delete.

``ensure_pipeline`` also makes the output repo (its branch is made by the first job's output commit),
the cron tick repos, and input branches that do not exist yet (as Pachyderm does on create).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pach_airflow.errors import AlreadyExists, JobError, NotFound
from pach_airflow.pps.records import (
    PIPELINE_PAUSED,
    PIPELINE_RUNNING,
    PipelineInfo,
    _branches,
    _get_record,
    _now,
    _spec_dict,
    pipeline_key,
)

if TYPE_CHECKING:
    from pach_airflow.pfs import Store


def _check_inputs(store: Store, spec_dict: Mapping[str, Any]) -> None:
    """Refuse a spec whose input repos do not exist or which reads its own output, before writing."""
    name = spec_dict["pipeline"]["name"]
    for kind, _inp, repo, _branch in _branches(spec_dict):
        if kind == "cron":
            continue
        if repo == name:
            raise JobError(f"pipeline {name}: input repo {repo!r} is the pipeline's own output repo; "
                           f"a pipeline cannot read its own output")
        try:
            store.inspect_repo(repo)
        except NotFound:
            raise JobError(f"pipeline {name}: input repo {repo!r} does not exist; "
                           f"create it first: pach-airflow create repo {repo}") from None


def _ensure_branch(store: Store, repo: str, branch: str) -> None:
    try:
        store.inspect_branch(repo, branch)
    except NotFound:
        try:
            store.create_branch(repo, branch)
        except AlreadyExists:
            pass


def _ensure_repo(store: Store, repo: str, description: str) -> None:
    try:
        store.inspect_repo(repo)
    except NotFound:
        try:
            store.create_repo(repo, description)
        except AlreadyExists:
            pass


def ensure_pipeline(store: Store, spec: Any, *, reprocess: bool = False) -> PipelineInfo:
    """Create or update the pipeline record, its output repo, and its cron repos.

    A new pipeline gets a new random salt; an update keeps the salt (so unchanged datums are not rerun
    even when ``cmd`` or ``image`` changed, as in Pachyderm) unless ``reprocess``. The pipeline's
    state (RUNNING / PAUSED) survives updates. Input branches that do not exist yet in existing input
    repos are created with no head, as Pachyderm does. A missing input repo raises ``JobError``
    before anything is written.
    """
    spec_dict = _spec_dict(spec)
    name = spec_dict["pipeline"]["name"]
    _check_inputs(store, spec_dict)

    now = _now()

    def apply(old: dict | None) -> dict:
        if old is None:
            return {"spec": spec_dict, "salt": secrets.token_hex(16), "state": PIPELINE_RUNNING,
                    "created": now, "updated": now, "version": 1, "last_job": None, "last_job_state": None,
                    "job_markers": True}  # its jobs are listed from pps/joblist/ (records.job_marker_key)
        new = dict(old)
        changed = old.get("spec") != spec_dict
        if changed or reprocess:
            new["spec"] = spec_dict
            new["version"] = int(old.get("version", 1)) + 1
            new["updated"] = now
        if reprocess:
            new["salt"] = secrets.token_hex(16)
        return new

    rec = store.update_record(pipeline_key(name), apply)
    # The output branch is made by the first job's output commit (creating it here would add an empty
    # commit that no job made).
    _ensure_repo(store, name, f"Output repo for pipeline {name}.")
    for kind, _inp, repo, branch in _branches(spec_dict):
        if kind == "cron":
            _ensure_repo(store, repo, f"Cron tick repo for pipeline {name}.")
        if _is_pipeline_output(store, repo):
            continue  # the upstream's first job makes its output branch; an empty commit here would not
        _ensure_branch(store, repo, branch)
    return PipelineInfo.from_record(rec)


def _is_pipeline_output(store: Store, repo: str) -> bool:
    return _get_record(store, pipeline_key(repo)) is not None


def inspect_pipeline(store: Store, pipeline: str) -> PipelineInfo:
    rec = _get_record(store, pipeline_key(pipeline))
    if rec is None:
        raise NotFound(f"pipeline {pipeline!r} not found; create it with: pach-airflow create pipeline -f SPEC")
    return PipelineInfo.from_record(rec)


def list_pipelines(store: Store) -> list[PipelineInfo]:
    out = []
    for key in store.list_records("pps/pipelines/"):
        rec = _get_record(store, key)
        if rec is not None:
            out.append(PipelineInfo.from_record(rec))
    return sorted(out, key=lambda p: p.name)


def set_pipeline_state(store: Store, pipeline: str, state: str) -> PipelineInfo:
    """``stop pipeline`` (PAUSED) and ``start pipeline`` (RUNNING)."""
    if state not in (PIPELINE_RUNNING, PIPELINE_PAUSED):
        raise JobError(f"pipeline state must be {PIPELINE_RUNNING} or {PIPELINE_PAUSED}, not {state!r}")
    inspect_pipeline(store, pipeline)

    def apply(old: dict | None) -> dict:
        if old is None:
            raise NotFound(f"pipeline {pipeline!r} not found")
        return {**old, "state": state, "updated": _now()}

    return PipelineInfo.from_record(store.update_record(pipeline_key(pipeline), apply))


def delete_pipeline(store: Store, pipeline: str, *, keep_repo: bool = False, force: bool = False) -> None:
    """Delete the pipeline record, its jobs' records and (unless ``keep_repo``) its output and cron repos.

    Refused when another pipeline reads this pipeline's output repo, unless ``force``.
    """
    info = inspect_pipeline(store, pipeline)
    if not force and not keep_repo:
        readers = [p.name for p in list_pipelines(store) if p.name != pipeline
                   and any(repo == pipeline for kind, _n, repo, _b in _branches(p.spec) if kind == "pfs")]
        if readers:
            raise JobError(f"pipeline {pipeline}: its output repo is an input of {', '.join(readers)}; "
                           f"delete those first, or pass --force (or --keep-repo)")
    for key in list(store.list_records(f"pps/jobs/{pipeline}/")) + list(store.list_records(f"pps/joblist/{pipeline}/")):
        try:
            store.delete_record(key)
        except NotFound:
            pass
    if not keep_repo:
        repos = [pipeline] + [repo for kind, _n, repo, _b in _branches(info.spec) if kind == "cron"]
        for repo in repos:
            try:
                store.delete_repo(repo, force=True)
            except NotFound:
                pass
    store.delete_record(pipeline_key(pipeline))


def _open_jobs(store: Store, pipeline: str, *, add: str | None = None, drop: Iterable[str] = ()) -> list[str]:
    """Update the pipeline record's list of unfinished jobs (so settling stale jobs reads only those,
    not every job record); returns the new list."""
    drop = set(drop)

    def apply(old: dict | None) -> dict:
        if old is None:
            raise NotFound(f"pipeline {pipeline} not found")
        jobs_ = [j for j in old.get("open_jobs", []) if j not in drop]
        if add and add not in jobs_:
            jobs_.append(add)
        return {**old, "open_jobs": jobs_}

    try:
        return store.update_record(pipeline_key(pipeline), apply)["open_jobs"]
    except NotFound:
        return []
