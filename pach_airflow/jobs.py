"""Pipelines, jobs and output commits: the PPS side of pach_airflow.

This module owns the ``pps/`` space of the store's records (layout in ``docs/architecture.md``):

``pps/pipelines/<pipeline>``
    the pipeline record: normalised spec, salt, state (RUNNING / PAUSED), version, created/updated,
    ``last_job`` / ``last_job_state``, and ``open_jobs`` (jobs not finished yet).
``pps/jobs/<pipeline>/<job>``
    the job record (state, counters, pinned spec, input commits, set ids, egress result).
``pps/jobs/<pipeline>/<job>/plan`` (bytes)
    every datum of the job, one JSON line each: ``{"id", "hash", "files", "set"}`` for datums to run,
    ``{"id", "hash", "files", "set": null, "job", "outputs"}`` for datums carried over (skipped).
``pps/jobs/<pipeline>/<job>/sets/<set>``
    the datums of one set, read by ``worker stage``.
``pps/jobs/<pipeline>/<job>/results/<set>``
    written by ``worker upload`` (never by this module).
``pps/jobs/<pipeline>/<job>/datums`` (bytes)
    the job's datum index, sorted by datum id, one JSON line per datum:
    ``{"id", "hash", "state", "job", "outputs", "files", ...}``; the next job's skip base.

A job goes ``plan_job`` → ``process_set`` (once per set, anywhere) → ``finish_job``; ``run_job`` does
all three here and now. Following Pachyderm 2.x (reference §4, §5):

* Job id = output commit id. When the newest pinned input commit id is not yet used in the output repo
  it *is* the job id (Pachyderm's global id: ``PACH_JOB_ID == <input>_COMMIT`` for the commit that
  started the job); otherwise a fresh commit id.
* The skip base is the last job whose output commit has no error (a failed or killed job is never a
  base); a datum is skipped when its id and hash match a datum that succeeded in the base.
* Output = previous good output − outputs of removed or changed datums + new outputs. Two datums
  writing one path, or one datum's file being another's directory, fails the job naming both datums.
* A job whose input commit carries an error (an upstream job failed) is JOB_UNRUNNABLE: nothing runs.
* A failed job (failed datum, path clash, missing set result, egress failure), an unrunnable one, or
  a timed-out one (``job_timeout`` → JOB_KILLED) still writes its output commit, **with the error set
  and the content of the last good output**, so the output branch head carries the error while every
  file a reader sees is the last good output. Nothing of the failed job's datums is lost: their logs
  and states stay in the job's records.

Crash safety: the output commit (one compare-and-swap of the branch head) is the only step readers
see. It is written after the datum index and before the final job record. A process killed before it
leaves the branch as it was; the stale job record (state still CREATED/RUNNING/FINISHING) is settled
by the next ``plan_job`` of the pipeline: finished from its commit when the commit landed, else marked
JOB_KILLED with the reason. A job whose runner is a live process on this host is left alone; a job
planned by Airflow has no such process, so do not ``run pipeline`` by hand while its DAG runs a job
(Airflow's ``max_active_runs=1`` keeps its own runs apart).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pach_airflow.errors import AlreadyExists, JobError, NotFound, StoreError

# Job states, as Pachyderm names them (pps.proto JobState).
JOB_CREATED = "JOB_CREATED"
JOB_STARTING = "JOB_STARTING"
JOB_RUNNING = "JOB_RUNNING"
JOB_EGRESSING = "JOB_EGRESSING"
JOB_FINISHING = "JOB_FINISHING"
JOB_SUCCESS = "JOB_SUCCESS"
JOB_FAILURE = "JOB_FAILURE"
JOB_KILLED = "JOB_KILLED"
JOB_UNRUNNABLE = "JOB_UNRUNNABLE"
TERMINAL_STATES = frozenset({JOB_SUCCESS, JOB_FAILURE, JOB_KILLED, JOB_UNRUNNABLE})

# Datum states (pps.proto DatumState).
DATUM_SUCCESS = "SUCCESS"
DATUM_FAILED = "FAILED"
DATUM_RECOVERED = "RECOVERED"
DATUM_SKIPPED = "SKIPPED"
DATUM_STARTING = "STARTING"

PIPELINE_RUNNING = "RUNNING"
PIPELINE_PAUSED = "PAUSED"

DEFAULT_SET_CAP = 1024

__all__ = [
    "JobInfo",
    "PipelineInfo",
    "PlannedJob",
    "delete_pipeline",
    "ensure_pipeline",
    "finish_job",
    "inspect_datum",
    "inspect_job",
    "inspect_pipeline",
    "job_logs",
    "list_job_datums",
    "list_jobs",
    "list_pipelines",
    "plan_job",
    "process_set",
    "run_job",
    "set_pipeline_state",
]


# --------------------------------------------------------------------------------------------------
# Record keys


def pipeline_key(pipeline: str) -> str:
    return f"pps/pipelines/{pipeline}"


def job_key(pipeline: str, job_id: str) -> str:
    return f"pps/jobs/{pipeline}/{job_id}"


def set_key(pipeline: str, job_id: str, set_id: str) -> str:
    return f"pps/jobs/{pipeline}/{job_id}/sets/{set_id}"


def result_key(pipeline: str, job_id: str, set_id: str) -> str:
    return f"pps/jobs/{pipeline}/{job_id}/results/{set_id}"


def plan_key(pipeline: str, job_id: str) -> str:
    return f"pps/jobs/{pipeline}/{job_id}/plan"


def index_key(pipeline: str, job_id: str) -> str:
    return f"pps/jobs/{pipeline}/{job_id}/datums"


# --------------------------------------------------------------------------------------------------
# Public value types


@dataclass(frozen=True)
class PipelineInfo:
    """A pipeline record as stored at ``pps/pipelines/<name>``."""

    name: str
    spec: dict
    salt: str
    state: str
    version: int
    created: str
    updated: str
    last_job: str | None = None
    last_job_state: str | None = None

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> PipelineInfo:
        return cls(
            name=rec["spec"]["pipeline"]["name"], spec=rec["spec"], salt=rec["salt"], state=rec["state"],
            version=int(rec.get("version", 1)), created=rec.get("created", ""), updated=rec.get("updated", ""),
            last_job=rec.get("last_job"), last_job_state=rec.get("last_job_state"),
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PlannedJob:
    """What ``plan_job`` decided: the job id (= output commit id), its datum sets and counts."""

    job_id: str
    pipeline: str
    set_ids: list[str]
    data_total: int
    data_to_run: int
    data_skipped: int
    input_commits: list[dict] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.job_id

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class JobInfo:
    """A job record (``pps/jobs/<pipeline>/<job>``); ``record`` holds every stored field."""

    id: str
    pipeline: str
    state: str
    reason: str | None
    started: str | None
    finished: str | None
    data_processed: int
    data_skipped: int
    data_failed: int
    data_recovered: int
    data_total: int
    input_commits: list[dict]
    output_commit: dict | None
    record: dict = field(repr=False, compare=False, default_factory=dict)

    @property
    def job_id(self) -> str:
        return self.id

    @property
    def succeeded(self) -> bool:
        return self.state == JOB_SUCCESS

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> JobInfo:
        return cls(
            id=rec["id"], pipeline=rec["pipeline"], state=rec["state"], reason=rec.get("reason"),
            started=rec.get("started"), finished=rec.get("finished"),
            data_processed=int(rec.get("data_processed", 0)), data_skipped=int(rec.get("data_skipped", 0)),
            data_failed=int(rec.get("data_failed", 0)), data_recovered=int(rec.get("data_recovered", 0)),
            data_total=int(rec.get("data_total", 0)), input_commits=list(rec.get("input_commits", [])),
            output_commit=rec.get("output_commit"), record=dict(rec),
        )

    def to_dict(self) -> dict:
        """The public view: every record field except the bulky pinned spec and set list."""
        out = {k: v for k, v in self.record.items() if k not in ("spec", "set_ids", "salt", "runner")}
        out["spec_version"] = self.record.get("spec_version")
        return out


# --------------------------------------------------------------------------------------------------
# Small helpers


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(ts: str | None) -> datetime | None:
    if not ts:
        return None
    return datetime.fromisoformat(ts)


def _get_record(store, key: str) -> Any | None:
    try:
        return store.get_record(key)
    except NotFound:
        return None


def _get_bytes(store, key: str) -> bytes | None:
    try:
        return store.get_bytes(key)
    except NotFound:
        return None


def _as_spec_model(spec: Any):
    """Accept a ``PipelineSpec`` model, or a spec dict (a job record's pinned spec)."""
    if isinstance(spec, Mapping):
        from pach_airflow.spec import parse_specs

        specs = parse_specs(json.dumps(spec), source="<pipeline record>")
        return specs[0]
    return spec


def _dump(spec: Any) -> dict:
    from pach_airflow.spec import dump_spec

    return dump_spec(spec)


def _spec_dict(spec: Any) -> dict:
    """The normalised spec dict of a model or of a (possibly hand-written) spec dict."""
    return _dump(_as_spec_model(spec))


def _input_leaves(inp: Mapping[str, Any] | None, pipeline: str) -> Iterator[tuple[str, str, str, str]]:
    """Yield ``(kind, name, repo, branch)`` for every PFS and cron input of a dumped spec's input."""
    if not inp:
        return
    if inp.get("pfs"):
        p = inp["pfs"]
        yield "pfs", p.get("name") or p["repo"], p["repo"], p.get("branch") or "master"
    if inp.get("cron"):
        c = inp["cron"]
        yield "cron", c["name"], c.get("repo") or f"{pipeline}_{c['name']}", "master"
    for combinator in ("cross", "union", "join", "group"):
        for child in inp.get(combinator) or ():
            yield from _input_leaves(child, pipeline)


def _branches(spec_dict: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """Distinct input leaves of a spec, in input order."""
    seen: set[tuple[str, str]] = set()
    out = []
    for kind, name, repo, branch in _input_leaves(spec_dict.get("input"), spec_dict["pipeline"]["name"]):
        if (repo, branch) not in seen:
            seen.add((repo, branch))
            out.append((kind, name, repo, branch))
    return out


def _output_branch(spec_dict: Mapping[str, Any]) -> str:
    return spec_dict.get("output_branch") or "master"


def _seconds(value: Any) -> float | None:
    """A duration from a spec (timedelta, number of seconds, or protobuf/Go duration text) in seconds."""
    if value is None or value == "":
        return None
    if hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        from pach_airflow.spec import parse_duration  # the spec module's parser, when it has one

        return float(parse_duration(text).total_seconds())
    except ImportError:
        pass
    import re

    total = 0.0
    parts = re.findall(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise JobError(f"job_timeout: cannot read duration {text!r}; write it like \"600s\"")
    scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    for number, unit in parts:
        total += float(number) * scale[unit]
    return total


def _parallelism(spec_dict: Mapping[str, Any]) -> int:
    ps = spec_dict.get("parallelism_spec") or {}
    try:
        return max(1, int(ps.get("constant") or 1))
    except (TypeError, ValueError):
        return 1


def _jsonl(lines: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()


def _read_jsonl(data: bytes | None) -> list[dict]:
    if not data:
        return []
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


_INPUT_FIELDS: tuple[str, ...] | None = None


def _input_dict(di: Any) -> dict:
    """A ``DatumInput`` as the JSON dict the set records hold."""
    global _INPUT_FIELDS
    if isinstance(di, Mapping):
        return dict(di)
    if _INPUT_FIELDS is None:
        _INPUT_FIELDS = tuple(f.name for f in dataclasses.fields(di))
    return {name: getattr(di, name) for name in _INPUT_FIELDS}


def _files_of(inputs: Iterable[Mapping[str, Any]]) -> list[dict]:
    """The ``files`` of a datum as ``list datum -f`` prints them."""
    return [{"input": i["name"], "repo": i["repo"], "branch": i["branch"], "path": i["path"],
             "hash": i.get("hash")} for i in inputs]


def _input_size(inputs: Iterable[Mapping[str, Any]]) -> int:
    return sum(int(i.get("size") or 0) for i in inputs)


# --------------------------------------------------------------------------------------------------
# Pipelines


def _check_inputs(store, spec_dict: Mapping[str, Any]) -> None:
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


def _ensure_branch(store, repo: str, branch: str) -> None:
    try:
        store.inspect_branch(repo, branch)
    except NotFound:
        try:
            store.create_branch(repo, branch)
        except AlreadyExists:
            pass


def _ensure_repo(store, repo: str, description: str) -> None:
    try:
        store.inspect_repo(repo)
    except NotFound:
        try:
            store.create_repo(repo, description)
        except AlreadyExists:
            pass


def ensure_pipeline(store, spec: Any, *, reprocess: bool = False) -> PipelineInfo:
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
                    "created": now, "updated": now, "version": 1, "last_job": None, "last_job_state": None}
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


def _is_pipeline_output(store, repo: str) -> bool:
    return _get_record(store, pipeline_key(repo)) is not None


def inspect_pipeline(store, pipeline: str) -> PipelineInfo:
    rec = _get_record(store, pipeline_key(pipeline))
    if rec is None:
        raise NotFound(f"pipeline {pipeline!r} not found; create it with: pach-airflow create pipeline -f SPEC")
    return PipelineInfo.from_record(rec)


def list_pipelines(store) -> list[PipelineInfo]:
    out = []
    for key in store.list_records("pps/pipelines/"):
        rec = _get_record(store, key)
        if rec is not None:
            out.append(PipelineInfo.from_record(rec))
    return sorted(out, key=lambda p: p.name)


def set_pipeline_state(store, pipeline: str, state: str) -> PipelineInfo:
    """``stop pipeline`` (PAUSED) and ``start pipeline`` (RUNNING)."""
    if state not in (PIPELINE_RUNNING, PIPELINE_PAUSED):
        raise JobError(f"pipeline state must be {PIPELINE_RUNNING} or {PIPELINE_PAUSED}, not {state!r}")
    inspect_pipeline(store, pipeline)

    def apply(old: dict | None) -> dict:
        if old is None:
            raise NotFound(f"pipeline {pipeline!r} not found")
        return {**old, "state": state, "updated": _now()}

    return PipelineInfo.from_record(store.update_record(pipeline_key(pipeline), apply))


def delete_pipeline(store, pipeline: str, *, keep_repo: bool = False, force: bool = False) -> None:
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
    for key in list(store.list_records(f"pps/jobs/{pipeline}/")):
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


# --------------------------------------------------------------------------------------------------
# Planning


def _check_pins(store, spec_dict: Mapping[str, Any], commits: Mapping[str, str] | None) -> None:
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


def _pin_commits(store, spec_dict: Mapping[str, Any], commits: Mapping[str, str] | None
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


def _job_exists(store, pipeline: str, job_id: str) -> bool:
    return _get_record(store, job_key(pipeline, job_id)) is not None


def _commit_exists(store, repo: str, commit_id: str) -> bool:
    try:
        store.inspect_commit(repo, commit_id)
        return True
    except NotFound:
        return False


def _choose_job_id(store, pipeline: str, out_repo: str, out_branch: str,
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


def _list_job_ids(store, pipeline: str) -> list[str]:
    prefix = f"pps/jobs/{pipeline}/"
    ids = set()
    for key in store.list_records(prefix, recursive=False):
        rest = key[len(prefix):]
        if rest and "/" not in rest:
            ids.add(rest)
    return sorted(ids)


def _find_base(store, pipeline: str, out_repo: str, out_branch: str) -> tuple[str | None, list[dict]]:
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


def _open_jobs(store, pipeline: str, *, add: str | None = None, drop: Iterable[str] = ()) -> list[str]:
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


def _settle_stale_jobs(store, pipeline: str, by_job: str | None = None) -> None:
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


def plan_job(store, spec: Any, *, commits: Mapping[str, str] | None = None, job_id: str | None = None,
             cap: int = DEFAULT_SET_CAP) -> PlannedJob:
    """Plan one job: ensure the pipeline, pin input commits, diff datums against the last good job,
    cut the datums to run into at most ``cap`` sets, and write the job, plan and set records.

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
        "base_job": None,
    }

    def create(old: dict | None, job_id: str) -> dict:
        if old is not None:  # another run took this id first (two runs of one pipeline at once)
            raise AlreadyExists(f"job {name}@{job_id} exists already")
        return {**rec_fields, "id": job_id}

    # Listed as open before its record exists: a crash in between leaves an id that settles away.
    _open_jobs(store, name, add=job_id)
    try:
        base_rec = store.update_record(job_key(name, job_id), lambda old: create(old, job_id))
    except AlreadyExists:
        if explicit_id:
            raise JobError(f"pipeline {name}: job {job_id} exists already") from None
        job_id = store.new_commit_id()
        _open_jobs(store, name, add=job_id)
        base_rec = store.update_record(job_key(name, job_id), lambda old: create(old, job_id))

    model = _as_spec_model(spec) if isinstance(spec, Mapping) else spec
    every_job = (spec_dict.get("reprocess_spec") or "until_success") == "every_job"
    base_id, base_index = _find_base(store, name, name, out_branch)
    base_map = {d["id"]: (d["hash"], d["state"]) for d in base_index}
    base_by_id = {d["id"]: d for d in base_index}

    datums = list(datum_mod.iter_datums(store, model, pinned, info.salt))
    plan = datum_mod.plan_incremental(datums, base_map if base_id else None, every_job=every_job)
    to_run = list(plan.to_run)
    sets = datum_mod.cut_datum_sets(to_run, model, cap=cap) if to_run and not failed_inputs else []

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
        return {**(old or base_rec), "state": JOB_RUNNING, "set_ids": set_ids, "data_total": len(plan_lines),
                "data_to_run": len(plan_lines) - skipped, "data_skipped": skipped, "base_job": base_id}

    store.update_record(job_key(name, job_id), running)
    if failed_inputs:
        # Pachyderm's UNRUNNABLE: an upstream job failed, so its output commit (our input) carries an
        # error. Nothing runs; the job ends now, its output commit carrying the reason.
        finish_job(store, name, job_id, killed_reason="; ".join(failed_inputs), _end_state=JOB_UNRUNNABLE)
        return PlannedJob(job_id=job_id, pipeline=name, set_ids=[], data_total=len(plan_lines), data_to_run=0,
                          data_skipped=skipped, input_commits=input_commits)
    return PlannedJob(job_id=job_id, pipeline=name, set_ids=set_ids, data_total=len(plan_lines),
                      data_to_run=len(plan_lines) - skipped, data_skipped=skipped, input_commits=input_commits)


# --------------------------------------------------------------------------------------------------
# Processing


def process_set(store, pipeline: str, job_id: str, set_id: str, *, runner: str = "local") -> dict:
    """Run one datum set of a planned job. ``runner="local"`` runs it on this machine
    (``pach_airflow.runners.local.run_set``); Kubernetes pods run the worker commands themselves."""
    rec = _get_record(store, job_key(pipeline, job_id))
    if rec is None:
        raise JobError(f"job {pipeline}@{job_id} not found; plan it first")
    if rec.get("state") in TERMINAL_STATES:
        raise JobError(f"job {pipeline}@{job_id} is {rec['state']}; its sets can no longer run")
    if set_id not in rec.get("set_ids", []):
        raise JobError(f"job {pipeline}@{job_id} has no datum set {set_id!r}")
    if runner != "local":
        raise JobError(f"runner {runner!r}: only the local runner runs sets through jobs.process_set; "
                       f"Kubernetes pods run the worker commands")
    from pach_airflow.runners.local import run_set

    return run_set(store, pipeline, job_id, set_id)


# --------------------------------------------------------------------------------------------------
# Finishing


def _count(index: Iterable[Mapping[str, Any]], job_id: str) -> dict:
    processed = skipped = failed = recovered = total = 0
    dl = ul = 0
    for d in index:
        total += 1
        state = d.get("state")
        if state == DATUM_SUCCESS and d.get("job") not in (None, job_id):
            skipped += 1
        elif state == DATUM_SUCCESS:
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
        if d.get("state") != DATUM_SUCCESS:
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

    rows = sorted((p, h, int(s)) for d in index if d.get("state") == DATUM_SUCCESS
                  for p, h, s in d.get("outputs") or ())
    return [FileInfo(path=p, type="file", size=s, hash=h) for p, h, s in rows]


def _base_files(store, out_repo: str, base_id: str | None):
    if not base_id:
        return []
    return list(store.walk(out_repo, base_id))


def _update_job(store, pipeline: str, job_id: str, patch: Mapping[str, Any]) -> dict:
    return store.update_record(job_key(pipeline, job_id), lambda old: {**(old or {}), **patch})


def finish_job(store, pipeline: str, job_id: str, *, killed_reason: str | None = None,
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

    index: list[dict] = []
    for line in plan:
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
            if entry["state"] != DATUM_SUCCESS:
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


# --------------------------------------------------------------------------------------------------
# Running here and now


def _descendants(pid: int) -> list[int]:
    """Every live descendant process of ``pid`` (from /proc), parents before children."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def _kill_sets(pipeline: str) -> int:
    """SIGKILL the local runner's set processes of ``pipeline`` that this process started (the sets
    still running when job_timeout hit). The runner runs each set under ``unshare --kill-child``, so
    killing that process takes the set's whole process tree along. Nothing else this process started
    (say, a test's S3 server) is touched."""
    killed = 0
    for pid in _descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(a.endswith("/enter.sh") and f"/{pipeline}-" in a for a in argv):
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    return killed


def run_job(store, spec: Any, *, commits: Mapping[str, str] | None = None, reprocess: bool = False,
            runner: str = "local", cap: int = DEFAULT_SET_CAP) -> JobInfo:
    """Create or update the pipeline, plan one job against the pinned commits (default: the heads), run
    its sets here with up to ``parallelism_spec.constant`` sets at once, and finish it.

    ``job_timeout`` counts from the job's start: when it passes, sets not started are dropped, running
    ones are killed, and the job ends JOB_KILLED (output commit with the error, content unchanged).
    """
    spec_dict = _spec_dict(spec)
    if reprocess:
        ensure_pipeline(store, spec, reprocess=True)
    workers = _parallelism(spec_dict)
    if not spec_dict.get("datum_set_spec"):
        # Here sets only feed the worker threads, so cut as Pachyderm does by default: 4 sets per
        # worker (registry.go). One set per datum (what Airflow's mapping wants) would pay the
        # runner's per-set cost (namespace, staging, upload) once per datum.
        cap = min(cap, workers * 4)
    t0 = time.monotonic()
    planned = plan_job(store, spec, commits=commits, cap=cap)
    t_plan = time.monotonic() - t0
    name, job_id = planned.pipeline, planned.job_id
    _update_job(store, name, job_id, {"runner": {"host": socket.gethostname(), "pid": os.getpid()}})
    timeout = _seconds(spec_dict.get("job_timeout"))
    deadline = t0 + timeout if timeout else None  # counted from the job's start, planning included
    workers = min(workers, max(1, len(planned.set_ids)))
    errors: list[str] = []
    killed: str | None = None
    stop = threading.Event()
    # what the runner reports per set, summed over the sets: where the processing time went
    runner_seconds = {"stage_seconds": 0.0, "run_seconds": 0.0, "upload_seconds": 0.0}

    def one(set_id: str) -> dict:
        if stop.is_set():
            return {}
        return process_set(store, name, job_id, set_id, runner=runner) or {}

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"job-{name}")
    try:
        futures = {pool.submit(one, sid): sid for sid in planned.set_ids}
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        done, not_done = concurrent.futures.wait(futures, timeout=remaining)
        if not_done:
            stop.set()
            for f in not_done:
                f.cancel()
            _kill_sets(name)
            killed = _timeout_reason(spec_dict)
            concurrent.futures.wait(not_done, timeout=30)
        for f in done:
            exc = f.exception()
            if exc is not None:
                errors.append(f"datum set {futures[f]}: {exc}")
                continue
            for key in runner_seconds:
                runner_seconds[key] += float(f.result().get(key) or 0)
    finally:
        pool.shutdown(wait=killed is None, cancel_futures=True)
    t_process = time.monotonic() - t0 - t_plan
    info = finish_job(store, name, job_id, killed_reason=killed)
    timings = {"plan": round(t_plan, 3), "process": round(t_process, 3),
               "finish": round(time.monotonic() - t0 - t_plan - t_process, 3),
               **{k.removesuffix("_seconds") + "_sets": round(v, 3) for k, v in runner_seconds.items()}}
    info = JobInfo.from_record(_update_job(store, name, job_id, {"timings": timings}))
    if errors and info.state == JOB_FAILURE and info.reason and "did not run" in info.reason:
        # The runner's own error says more than "no results".
        info = JobInfo.from_record(_update_job(store, name, job_id,
                                               {"reason": info.reason + "; " + "; ".join(errors)}))
    return info


# --------------------------------------------------------------------------------------------------
# Reading jobs and datums


def inspect_job(store, pipeline: str, job_id: str) -> JobInfo:
    rec = _get_record(store, job_key(pipeline, job_id))
    if rec is None:
        raise NotFound(f"job {pipeline}@{job_id} not found; list jobs with: pach-airflow list job -p {pipeline}")
    return JobInfo.from_record(rec)


def list_jobs(store, pipeline: str | None = None) -> list[JobInfo]:
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


def list_job_datums(store, pipeline: str, job_id: str) -> Iterator[dict]:
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


def inspect_datum(store, pipeline: str, job_id: str, datum_id: str) -> dict:
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


def job_logs(store, pipeline: str, job_id: str | None = None, *, datum_id: str | None = None
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
