"""Planning a job: pin input commits, choose the job id (Pachyderm's global id when possible), settle
jobs a dead process left, diff datums against the last good job, cut sets, write the records."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pach_airflow.errors import AlreadyExists, JobError, NotFound, StoreError
from pach_airflow.pps.finish import _count, finish_job
from pach_airflow.pps.pipelines import _check_inputs, _is_pipeline_output, _open_jobs, ensure_pipeline
from pach_airflow.pps.records import (
    DEFAULT_SET_CAP,
    JOB_CREATED,
    JOB_EGRESSING,
    JOB_FAILURE,
    JOB_FINISHING,
    JOB_KILLED,
    JOB_RUNNING,
    JOB_SUCCESS,
    JOB_UNRUNNABLE,
    PIPELINE_PAUSED,
    TERMINAL_STATES,
    PlannedJob,
    _as_spec_model,
    _branches,
    _commit_exists,
    _files_of,
    _get_bytes,
    _get_record,
    _input_dict,
    _input_size,
    _jsonl,
    _now,
    _output_branch,
    _read_jsonl,
    _spec_dict,
    index_key,
    job_key,
    job_marker_key,
    pipeline_key,
    plan_key,
    set_key,
)

if TYPE_CHECKING:
    from pach_airflow.pfs import Store


def _check_pins(store: Store, spec_dict: Mapping[str, Any], commits: Mapping[str, str] | None) -> None:
    """Refuse pinned commits for repos that are not inputs, or commit ids an input repo lacks."""
    name = spec_dict["pipeline"]["name"]
    commits = dict(commits or {})
    if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in commits.items()):
        raise JobError(f"pipeline {name}: commits must map an input repo to a commit id, "
                       f"e.g. {{\"images\": \"<commit id>\"}}; got {commits!r}")
    known = {repo for _k, _n, repo, _b in _branches(spec_dict)} | {
        f"{repo}@{branch}" for _k, _n, repo, branch in _branches(spec_dict)}
    unknown = sorted(set(commits) - known)
    if unknown:
        raise JobError(f"pipeline {name}: commits pinned for {', '.join(unknown)}, which "
                       f"{'is' if len(unknown) == 1 else 'are'} not an input of the pipeline "
                       f"(inputs: {', '.join(sorted(r for r in known if '@' not in r)) or 'none'})")
    for key, cid in commits.items():
        repo = key.partition("@")[0]
        try:
            store.inspect_commit(repo, cid)
        except NotFound:
            raise JobError(f"pipeline {name}: commit {cid!r} not found in input repo {repo!r}") from None
        except StoreError as exc:
            raise JobError(f"pipeline {name}: commit {cid!r} of input repo {repo!r}: {exc}") from None


def _pin_commits(store: Store, spec_dict: Mapping[str, Any], commits: Mapping[str, str] | None
                 ) -> dict[tuple[str, str], str | None]:
    """(repo, branch) → commit id for every input; ``None`` for a branch with no commit yet."""
    name = spec_dict["pipeline"]["name"]
    commits = dict(commits or {})
    pinned: dict[tuple[str, str], str | None] = {}
    for kind, _inp, repo, branch in _branches(spec_dict):
        want = commits.get(f"{repo}@{branch}") or commits.get(repo)
        if want:
            try:
                info = store.inspect_commit(repo, want)
            except NotFound:
                raise JobError(f"pipeline {name}: commit {want!r} not found in input repo {repo!r}") from None
            pinned[(repo, branch)] = info.id
            continue
        try:
            head = store.inspect_branch(repo, branch).head
        except NotFound:
            try:
                store.inspect_repo(repo)
            except NotFound:
                raise JobError(f"pipeline {name}: input repo {repo!r} does not exist; "
                               f"create it first: pach-airflow create repo {repo}") from None
            if _is_pipeline_output(store, repo):
                pinned[(repo, branch)] = None  # the upstream pipeline has not run yet: no datums
                continue
            raise JobError(f"pipeline {name}: input branch {repo}@{branch} does not exist; "
                           f"create it: pach-airflow create branch {repo}@{branch}") from None
        pinned[(repo, branch)] = head
    return pinned


def _job_exists(store: Store, pipeline: str, job_id: str) -> bool:
    return _get_record(store, job_key(pipeline, job_id)) is not None


def _choose_job_id(store: Store, pipeline: str, out_repo: str, out_branch: str,
                   pinned: Mapping[tuple[str, str], str | None]) -> str:
    """Pachyderm's global id when possible: the newest pinned input commit's id, if the output repo
    has no commit of that id, no job of this pipeline has it, and it sorts after the output head (so
    output commit ids keep sorting by time); else a fresh commit id."""
    ids = [c for c in pinned.values() if c]
    if ids:
        candidate = max(ids)
        head = None
        try:
            head = store.inspect_branch(out_repo, out_branch).head
        except NotFound:
            pass
        if ((head is None or candidate > head) and not _job_exists(store, pipeline, candidate)
                and not _commit_exists(store, out_repo, candidate)):
            return candidate
    return store.new_commit_id()


def _find_base(store: Store, pipeline: str, out_repo: str, out_branch: str) -> tuple[str | None, list[dict]]:
    """The last good job: the newest output commit made by a job, without error, whose datum index
    exists. Returns (job id, its index lines) or (None, [])."""
    try:
        commits = store.list_commits(out_repo, out_branch)
        for c in commits:
            if c.error or c.origin != "AUTO":
                continue
            rec = _get_record(store, job_key(pipeline, c.id))
            if rec is None or rec.get("state") not in (JOB_SUCCESS, JOB_FINISHING, JOB_EGRESSING,
                                                       JOB_RUNNING):
                continue
            data = _get_bytes(store, index_key(pipeline, c.id))
            if data is None:
                continue
            return c.id, _read_jsonl(data)
    except NotFound:
        pass
    return None, []


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _settle_stale_jobs(store: Store, pipeline: str, by_job: str | None = None) -> None:
    """Jobs left unfinished by a process that died: finished from their commit if it landed, else
    JOB_KILLED. A job run by a live process on this host is left alone. Only the jobs the pipeline
    record lists as open are read."""
    rec_p = _get_record(store, pipeline_key(pipeline)) or {}
    settled: list[str] = []
    for jid in rec_p.get("open_jobs", []):
        if jid == by_job:
            continue
        rec = _get_record(store, job_key(pipeline, jid))
        if rec is None or rec.get("state") in TERMINAL_STATES:
            settled.append(jid)
            continue
        runner = rec.get("runner") or {}
        if (runner.get("host") == socket.gethostname() and runner.get("pid")
                and runner.get("pid") != os.getpid() and _pid_alive(int(runner["pid"]))):
            continue
        spec_dict = rec.get("spec") or {}
        out_repo, out_branch = pipeline, _output_branch(spec_dict)
        commit = None
        try:
            commit = store.inspect_commit(out_repo, jid)
        except NotFound:
            pass
        if commit is not None:
            state = JOB_SUCCESS if not commit.error else JOB_FAILURE
            reason = commit.error
            index = _read_jsonl(_get_bytes(store, index_key(pipeline, jid)))
            counts = _count(index, jid)
            patch = {"state": state, "reason": reason, "finished": rec.get("finished") or _now(), **counts,
                     "output_commit": {"repo": out_repo, "branch": out_branch, "id": jid}}
        else:
            patch = {"state": JOB_KILLED, "finished": _now(),
                     "reason": "the process running this job stopped before the job finished"
                               + (f" (found when job {by_job} started)" if by_job else "")}

        def apply(old: dict | None, patch=patch, jid=jid) -> dict:
            if old is None:
                raise NotFound(f"job {pipeline}@{jid} was deleted")
            if old.get("state") in TERMINAL_STATES:
                return old
            return {**old, **patch}

        try:
            store.update_record(job_key(pipeline, jid), apply)
        except NotFound:
            pass
        settled.append(jid)
    if settled:
        _open_jobs(store, pipeline, drop=settled)


def plan_job(store: Store, spec: Any, *, commits: Mapping[str, str] | None = None, job_id: str | None = None,
             cap: int = DEFAULT_SET_CAP, runner: Mapping[str, Any] | None = None) -> PlannedJob:
    """Plan one job: ensure the pipeline, pin input commits, diff datums against the last good job,
    cut the datums to run into at most ``cap`` sets, and write the job, plan and set records.

    ``runner`` (``{"host", "pid"}``) names the process that will run the job here (``run_job``); a
    later plan leaves a job alone while that process lives.

    ``commits`` maps an input repo (or ``repo@branch``) to a commit id; other inputs use their branch
    head (a branch with no commit yet gives no datums). The job record ends in JOB_RUNNING.
    """
    from pach_airflow import datum as datum_mod

    spec_dict = _spec_dict(spec)
    _check_inputs(store, spec_dict)
    _check_pins(store, spec_dict, commits)  # bad conf is refused before anything is written
    info = ensure_pipeline(store, spec)
    if info.state == PIPELINE_PAUSED:
        raise JobError(f"pipeline {info.name} is stopped (PAUSED); start it first: "
                       f"pach-airflow start pipeline {info.name}")
    spec_dict = info.spec
    name = info.name
    out_branch = _output_branch(spec_dict)
    pinned = _pin_commits(store, spec_dict, commits)
    explicit_id = job_id is not None
    if job_id is None:
        job_id = _choose_job_id(store, name, name, out_branch, pinned)
    elif _job_exists(store, name, job_id):
        raise JobError(f"pipeline {name}: job {job_id} exists already")
    _settle_stale_jobs(store, name, by_job=job_id)

    input_commits = [{"repo": repo, "branch": branch, "id": cid} for (repo, branch), cid in pinned.items()
                     if cid]
    failed_inputs = []
    for c in input_commits:
        err = store.inspect_commit(c["repo"], c["id"]).error
        if err:
            failed_inputs.append(f"input commit {c['repo']}@{c['id']} has an error (an upstream job failed): "
                                 f"{err}")
    started = _now()
    rec_fields = {
        "id": job_id, "pipeline": name, "state": JOB_CREATED, "reason": None, "created": started,
        "started": started, "finished": None, "spec": spec_dict, "spec_version": info.version,
        "salt": info.salt, "input_commits": input_commits, "output_commit": None, "set_ids": [],
        "data_processed": 0, "data_skipped": 0, "data_failed": 0, "data_recovered": 0, "data_total": 0,
        "data_to_run": 0, "restart": 0, "download_bytes": 0, "upload_bytes": 0, "egress": None,
        "base_job": None, "runner": dict(runner) if runner else None,
    }

    def create(old: dict | None, job_id: str) -> dict:
        if old is not None:  # another run took this id first (two runs of one pipeline at once)
            raise AlreadyExists(f"job {name}@{job_id} exists already")
        return {**rec_fields, "id": job_id}

    # Listed as open (and marked) before its record exists: a crash in between leaves an id that
    # settles away, and a marker without a record, which list_jobs passes over.
    _open_jobs(store, name, add=job_id)
    store.put_record(job_marker_key(name, job_id), {})
    try:
        base_rec = store.update_record(job_key(name, job_id), lambda old: create(old, job_id))
    except AlreadyExists:
        if explicit_id:
            raise JobError(f"pipeline {name}: job {job_id} exists already") from None
        job_id = store.new_commit_id()
        _open_jobs(store, name, add=job_id)
        store.put_record(job_marker_key(name, job_id), {})
        base_rec = store.update_record(job_key(name, job_id), lambda old: create(old, job_id))

    model = _as_spec_model(spec) if isinstance(spec, Mapping) else spec
    every_job = (spec_dict.get("reprocess_spec") or "until_success") == "every_job"
    base_id, base_index = _find_base(store, name, name, out_branch)
    base_map = {d["id"]: (d["hash"], d["state"]) for d in base_index}
    base_by_id = {d["id"]: d for d in base_index}

    plan = _plan_from_diff(store, model, spec_dict, pinned, info.salt, base_id, base_map, every_job)
    if plan is None:
        datums = list(datum_mod.iter_datums(store, model, pinned, info.salt))
        plan = datum_mod.plan_incremental(datums, base_map if base_id else None, every_job=every_job)
    to_run = list(plan.to_run)
    sets, n_parallel = _cut_phases(to_run, set(plan.changed), model, cap) if not failed_inputs else ([], 0)

    plan_lines: list[dict] = []
    set_ids: list[str] = []
    for n, members in enumerate(sets):
        sid = str(n)
        set_ids.append(sid)
        recs = []
        for d in members:
            inputs = [_input_dict(i) for i in d.inputs]
            recs.append({"id": d.id, "hash": d.hash, "inputs": inputs})
            plan_lines.append({"id": d.id, "hash": d.hash, "files": _files_of(inputs), "set": sid,
                               "size": _input_size(inputs)})
        store.put_record(set_key(name, job_id, sid), {"datums": recs})
    for d in plan.skipped:
        did = d if isinstance(d, str) else d.id
        prev = base_by_id.get(did, {})
        files = _files_of(_input_dict(i) for i in d.inputs) if not isinstance(d, str) else prev.get("files", [])
        plan_lines.append({"id": did, "hash": getattr(d, "hash", prev.get("hash")), "files": files,
                           "set": None, "job": prev.get("job") or base_id, "outputs": prev.get("outputs", [])})
    plan_lines.sort(key=lambda line: line["id"])
    store.put_bytes(plan_key(name, job_id), _jsonl(plan_lines))

    skipped = sum(1 for line in plan_lines if line["set"] is None)

    def running(old: dict | None) -> dict:
        return {**(old or base_rec), "state": JOB_RUNNING, "set_ids": set_ids,
                "serial_set_ids": set_ids[n_parallel:], "data_total": len(plan_lines),
                "data_to_run": len(plan_lines) - skipped, "data_skipped": skipped, "base_job": base_id}

    store.update_record(job_key(name, job_id), running)
    if failed_inputs:
        # Pachyderm's UNRUNNABLE: an upstream job failed, so its output commit (our input) carries an
        # error. Nothing runs; the job ends now, its output commit carrying the reason.
        finish_job(store, name, job_id, killed_reason="; ".join(failed_inputs), _end_state=JOB_UNRUNNABLE)
        return PlannedJob(job_id=job_id, pipeline=name, set_ids=[], data_total=len(plan_lines), data_to_run=0,
                          data_skipped=skipped, input_commits=input_commits)
    return PlannedJob(job_id=job_id, pipeline=name, set_ids=set_ids, data_total=len(plan_lines),
                      data_to_run=len(plan_lines) - skipped, data_skipped=skipped, input_commits=input_commits,
                      serial_set_ids=set_ids[n_parallel:])


def _cut_phases(to_run: list[Any], changed: set[str], model: Any, cap: int) -> tuple[list[list[Any]], int]:
    """The sets of a job and how many of them (the first ones) hold only new datums.

    Pachyderm runs a job in two phases (registry.go processJobRunning): first the datums the base job
    did not have, then, only if none of those failed, a serial phase that skips unchanged datums and
    reruns changed ones. So new and changed datums go to separate sets, new ones first; the caller
    records the changed datums' sets as ``serial_set_ids``. With a cap of one set there is no room for
    two phases: everything is one set, counted as the first phase.
    """
    from pach_airflow import datum as datum_mod

    if not to_run:
        return [], 0
    new = [d for d in to_run if d.id not in changed]
    old = [d for d in to_run if d.id in changed]
    if not new or not old or cap < 2:
        sets = datum_mod.cut_datum_sets(to_run, model, cap=cap)
        return sets, (len(sets) if new or cap < 2 else 0)
    # share the cap in proportion to the datums, at least one set each
    cap_new = min(cap - 1, max(1, round(cap * len(new) / len(to_run))))
    first = datum_mod.cut_datum_sets(new, model, cap=cap_new)
    second = datum_mod.cut_datum_sets(old, model, cap=cap - len(first))
    return first + second, len(first)


def _plan_from_diff(store: Any, model: Any, spec_dict: dict, pinned: Mapping, salt: str, base_id: str | None,
                    base_map: Mapping, every_job: bool) -> Any:
    """The incremental plan from the store's diff since the base job's input commits, or None when
    that shortcut does not apply. Valid only when the base job ran the same input tree with the same
    salt, which its record pins; then only datums touching changed files are built, which is what makes
    a one-file change in a large input cheap to plan."""
    if not base_id:
        return None
    try:
        base_job = store.get_record(job_key(spec_dict["pipeline"]["name"], base_id))
    except NotFound:
        return None
    if base_job.get("salt") != salt or (base_job.get("spec") or {}).get("input") != spec_dict.get("input"):
        return None
    base_commits = {(c["repo"], c["branch"]): c["id"] for c in base_job.get("input_commits") or []}
    from pach_airflow import datum as datum_mod

    return datum_mod.plan_incremental_diff(store, model, pinned, salt, base=base_map, base_commits=base_commits,
                                           every_job=every_job)
