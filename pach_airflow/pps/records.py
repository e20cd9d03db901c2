"""Records of the ``pps/`` space: keys, states, value types, and the small helpers every pps module shares.

Layout (``docs/architecture.md`` has the table): ``pps/pipelines/<pipeline>``, ``pps/jobs/<pipeline>/<job>``
with its ``plan`` (bytes), ``sets/<set>``, ``results/<set>`` (written by the worker) and ``datums`` index
(bytes). Keys are built here only; the worker and the UI use these functions too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pach_airflow.errors import JobError, NotFound

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

DEFAULT_SET_CAP = 1024  # Airflow's default [core] max_map_length

if TYPE_CHECKING:
    from pach_airflow.pfs import Store


def pipeline_key(pipeline: str) -> str:
    return f"pps/pipelines/{pipeline}"


def job_key(pipeline: str, job_id: str) -> str:
    return f"pps/jobs/{pipeline}/{job_id}"


def job_marker_key(pipeline: str, job_id: str) -> str:
    """An empty record per job in a folder of its own: listing it lists the pipeline's jobs without the
    set and result records under each job (a store that lists without a delimiter reads them all)."""
    return f"pps/joblist/{pipeline}/{job_id}"


def set_key(pipeline: str, job_id: str, set_id: str) -> str:
    return f"pps/jobs/{pipeline}/{job_id}/sets/{set_id}"


def result_key(pipeline: str, job_id: str, set_id: str) -> str:
    return f"pps/jobs/{pipeline}/{job_id}/results/{set_id}"


def plan_key(pipeline: str, job_id: str) -> str:
    return f"pps/jobs/{pipeline}/{job_id}/plan"


def index_key(pipeline: str, job_id: str) -> str:
    return f"pps/jobs/{pipeline}/{job_id}/datums"


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
    # the sets of changed datums: Pachyderm's serial phase, run only when no new datum failed
    serial_set_ids: list[str] = field(default_factory=list)

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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(ts: str | None) -> datetime | None:
    if not ts:
        return None
    return datetime.fromisoformat(ts)


def _get_record(store: Store, key: str) -> Any | None:
    try:
        return store.get_record(key)
    except NotFound:
        return None


def _get_bytes(store: Store, key: str) -> bytes | None:
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


def _update_job(store: Store, pipeline: str, job_id: str, patch: Mapping[str, Any]) -> dict:
    return store.update_record(job_key(pipeline, job_id), lambda old: {**(old or {}), **patch})


def _commit_exists(store: Store, repo: str, commit_id: str) -> bool:
    try:
        store.inspect_commit(repo, commit_id)
        return True
    except NotFound:
        return False


def _list_job_ids(store: Store, pipeline: str) -> list[str]:
    """The pipeline's job ids, sorted. A pipeline created with ``job_markers`` lists its job markers;
    an older one every record under its jobs (sets and results included)."""
    rec = _get_record(store, pipeline_key(pipeline)) or {}
    if rec.get("job_markers"):
        marks = f"pps/joblist/{pipeline}/"
        return sorted(k[len(marks):] for k in store.list_records(marks, recursive=False))
    prefix = f"pps/jobs/{pipeline}/"
    ids = set()
    for key in store.list_records(prefix, recursive=False):
        rest = key[len(prefix):]
        if rest and "/" not in rest:
            ids.add(rest)
    return sorted(ids)


# Public spellings of two helpers the CLI and other modules use.
input_branches = _branches
parse_time = _parse_time
