"""Pipeline specs: the pydantic models of Pachyderm 2.x's ``CreatePipelineRequest``, parsing, defaults and
validation.

This module owns everything between a spec file and a :class:`PipelineSpec` the rest of the project can
trust: JSON and YAML (several specs per file, as YAML documents, a JSON stream or a list), ``snake_case``
and ``lowerCamelCase`` field names (as protojson accepts them), protobuf durations (``"600s"``), integers
given as strings, Pachyderm's defaults, and every check Pachyderm makes when it creates a pipeline (plus
the ones this project needs). Problems are collected, never raised one by one: :class:`SpecError` holds
one line per problem, ``<file>: pipeline <name>: <field path>: <message>``.

Public names: :func:`load_specs`, :func:`parse_specs`, :func:`spec_from_dict`, :func:`validate`,
:func:`dump_spec`, :func:`input_name`, :func:`iter_inputs`, :func:`parse_cron`, :func:`parse_duration`,
:func:`format_duration`, and the models (:class:`PipelineSpec`, :class:`Input`, :class:`PfsInput`,
:class:`CronInput`, ...).

Field policy
============

Every field of ``CreatePipelineRequest`` parses. What happens next is one of three things, and nothing is
silently dropped:

=================================================  ==========  =============================================
field                                              policy      why
=================================================  ==========  =============================================
pipeline.name, transform.{image, cmd, stdin,       used        the core of a pipeline
err_cmd, err_stdin, env, secrets,
image_pull_secrets, accept_return_code,
working_dir, user}, input (pfs, cross, union,
join, group, cron), parallelism_spec,
output_branch, datum_tries, datum_timeout,
job_timeout, reprocess_spec, resource_requests,
resource_limits, scheduling_spec, tolerations,
pod_patch, pod_spec, metadata, description
datum_set_spec                                     used        packs datums into the mapped tasks
                                                               (one Airflow task per datum set)
egress.URL, egress.object_storage                  used        the output commit is copied out after a job
autoscaling                                        accepted    the design meets its intent anyway: pods
                                                               exist only while a job runs (DESIGN.md);
                                                               the issue listed it as refused, DESIGN wins
sidecar_resource_requests/limits                   accepted    there is no storage sidecar; staging and
                                                               upload run in an init container and a step
                                                               that these limits apply to
transform.debug, transform.memory_volume,          accepted    debug logging; a tmpfs work folder; the
transform.dockerfile                                           Dockerfile is read by ``--push-images``
                                                               tooling only, never at run time
pfs.lazy, pfs.empty_files, pfs.reference,          accepted    lazy inputs are staged in full (user code
pfs.outer_join, propagation_spec.never = false                 sees the same bytes); the others are datum
                                                               semantics carried into DatumInput
salt, update, reprocess, dry_run                   accepted    request flags of ``pachctl create/update
                                                               pipeline``; the CLI's ``update pipeline
                                                               --reprocess`` / ``--dry-run`` act on them
pipeline.project, pfs.project, cron.project        checked     only the ``default`` project exists here
pfs.repo_type                                      checked     only ``user`` repos (no .meta/.spec repos)
service, spout                                     refused     long-running servers, not batch jobs
s3_out                                             refused     needs Pachyderm's per-job S3 gateway sidecar
egress.sql_database                                refused     needs Pachyderm's SQL egress driver
tf_job, determined                                 refused     Kubeflow / Determined integrations
transform.datum_batching                           refused     needs ``pachctl next datum`` in the image
pfs.trigger                                        refused     trigger branches are not implemented yet
pfs.s3 = true                                      refused     no per-job S3 gateway sidecar yet (the
                                                               worker refuses such datums too)
pfs.propagation_spec.never = true                  refused     every input commit starts a job here
pfs.commit, cron.commit, spec_commit               refused     set by Pachyderm itself, not in a spec file
maximum_expected_uptime                            refused     no uptime monitor exists here yet
=================================================  ==========  =============================================

Defaults filled in after parsing (Pachyderm's ``setPipelineDefaults`` / ``setInputDefaults``):
``transform.image`` = ``ubuntu:20.04``; every PFS input's ``name`` = its repo and ``branch`` = ``master``;
every cron input's ``repo`` = ``<pipeline>_<name>``; the children of cross/union/join/group are
stable-sorted by :func:`input_name`; ``datum_tries`` = 3; ``output_branch`` = ``master``;
``reprocess_spec`` = ``until_success``; ``parallelism_spec.constant`` = 1 when unset or 0.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import typing
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from pach_airflow.errors import SpecError

__all__ = [
    "CronInput",
    "CronSchedule",
    "DatumSetSpec",
    "Egress",
    "Input",
    "ParallelismSpec",
    "PfsInput",
    "Pipeline",
    "PipelineSpec",
    "ResourceSpec",
    "Transform",
    "dump_spec",
    "format_duration",
    "input_name",
    "iter_inputs",
    "load_specs",
    "parse_cron",
    "parse_duration",
    "parse_specs",
    "spec_from_dict",
    "spec_warnings",
    "validate",
]

DEFAULT_IMAGE = "ubuntu:20.04"
DEFAULT_BRANCH = "master"
DEFAULT_DATUM_TRIES = 3
REPROCESS_SPECS = ("until_success", "every_job")
MAX_PIPELINE_NAME = 51  # maxPipelineNameLength, api_server.go:88
_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")  # ancestry.ValidateName: repos, branches, pipelines
_INT64_MAX = 2**63 - 1


# --------------------------------------------------------------------------------------------------------
# Scalar types: integers as strings, protobuf durations, RFC 3339 timestamps
# --------------------------------------------------------------------------------------------------------

# Validators raise ValueError even for a wrong type: pydantic turns only ValueError (and AssertionError)
# into a reported problem; a TypeError would escape as a crash.
def _int64(value: Any) -> int:
    # protojson takes int64 as a JSON number or a string of digits; a bool is never a number.
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {json.dumps(value)}")  # noqa: TRY004
    if isinstance(value, int):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
            isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value)):
        number = int(value)
    else:
        raise ValueError(f"expected an integer, got {_show(value)}")
    if not -_INT64_MAX - 1 <= number <= _INT64_MAX:
        raise ValueError(f"integer {number} does not fit in 64 bits")
    return number


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {json.dumps(value)}")  # noqa: TRY004
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {_show(value)}") from None
    else:
        raise ValueError(f"expected a number, got {_show(value)}")  # noqa: TRY004
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {_show(value)}")
    return number


_PB_DURATION_RE = re.compile(r"([+-]?)(\d+)(?:\.(\d{1,9}))?s")
_GO_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> timedelta:
    """A protobuf JSON duration (``"600s"``, ``"1.5s"``, ``"-2s"``) as a :class:`timedelta`.

    Go-style durations such as ``"10m"`` are refused as protojson refuses them, with the seconds form to
    write instead."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        m = _PB_DURATION_RE.fullmatch(value.strip())
        if m:
            sign, secs, frac = m.groups()
            micros = int((frac or "").ljust(9, "0")[:6] or 0)
            td = timedelta(seconds=int(secs), microseconds=micros)
            return -td if sign == "-" else td
        try:
            hint = f' (write "{format_duration(parse_go_duration(value))}")'
        except ValueError:
            hint = ""
        raise ValueError(f'expected a protobuf duration such as "600s" or "1.5s", got {_show(value)}{hint}')
    hint = f' (write "{format_duration(timedelta(seconds=value))}")' if _is_number(value) else ""
    raise ValueError(f'expected a protobuf duration string such as "600s", got {_show(value)}{hint}')


def format_duration(td: timedelta) -> str:
    """The protobuf JSON form of ``td``: ``"600s"``, ``"1.5s"``."""
    micros = (td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds
    sign = "-" if micros < 0 else ""
    secs, frac = divmod(abs(micros), 1_000_000)
    return f"{sign}{secs}.{frac:06d}".rstrip("0") + "s" if frac else f"{sign}{secs}s"


def parse_go_duration(text: str) -> timedelta:
    """A Go ``time.ParseDuration`` string (``"10s"``, ``"1h30m"``, ``"1.5h"``, ``"300ms"``)."""
    s = text.strip()
    sign = -1 if s.startswith("-") else 1
    s = s.lstrip("+-")
    if s == "0":
        return timedelta(0)
    pos, total = 0, 0.0
    while pos < len(s):
        m = _GO_DURATION_RE.match(s, pos)
        if not m:
            raise ValueError(f"invalid duration {text!r}: expected e.g. 10s, 5m, 1h30m")
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if not s:
        raise ValueError(f"invalid duration {text!r}: expected e.g. 10s, 5m, 1h30m")
    return timedelta(seconds=sign * total)


def _timestamp(value: Any) -> datetime:
    # YAML turns unquoted timestamps into datetime objects already; JSON gives RFC 3339 text.
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"expected an RFC 3339 timestamp such as 2025-01-09T14:00:00Z, "
                             f"got {_show(value)}") from None
    else:
        raise ValueError(f"expected an RFC 3339 timestamp string, got {_show(value)}")  # noqa: TRY004
    if when.tzinfo is None:
        raise ValueError(f"timestamp {_show(value)} has no time zone: add Z or an offset such as +00:00")
    return when.astimezone(UTC)


def _format_timestamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_text(value: Any) -> str:
    # pod_patch / pod_spec are JSON strings in Pachyderm; a YAML list or mapping is taken as its JSON.
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a JSON string, got {_show(value)}")


def _enum(names: Sequence[str], what: str):
    def parse(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
            return names[value]
        if isinstance(value, str) and value in names:
            return value
        hint = ""
        if isinstance(value, str):
            close = [n for n in names if n.replace("_", "").lower() == value.replace("_", "").lower()]
            if close:
                hint = f" (Pachyderm spells it {close[0]})"
        raise ValueError(f"{what} must be one of {', '.join(names)}, got {_show(value)}{hint}")
    return parse


Int64 = Annotated[int, BeforeValidator(_int64)]
Float = Annotated[float, BeforeValidator(_float)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration),
                     PlainSerializer(format_duration, return_type=str)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp),
                      PlainSerializer(_format_timestamp, return_type=str)]
JsonText = Annotated[str, BeforeValidator(_json_text)]
TOLERATION_OPERATORS = ("EMPTY", "EXISTS", "EQUAL")
TAINT_EFFECTS = ("ALL_EFFECTS", "NO_SCHEDULE", "PREFER_NO_SCHEDULE", "NO_EXECUTE")
TolerationOperator = Annotated[str, BeforeValidator(_enum(TOLERATION_OPERATORS, "operator"))]
TaintEffect = Annotated[str, BeforeValidator(_enum(TAINT_EFFECTS, "effect"))]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------------------------------------
# Name rules
# --------------------------------------------------------------------------------------------------------

def _valid_repo_name(name: str, kind: str = "repo") -> str | None:
    """Why ``name`` is not a valid Pachyderm repo (or branch) name, or None.

    The rule lives in :mod:`pach_airflow.pfs.paths` (the store refuses the same names); the local rule
    below is only the fallback while that module cannot be imported."""
    try:
        from pach_airflow.pfs.paths import validate_branch_name, validate_repo_name
    except ImportError:
        if not name:
            return f"{kind} name is empty"
        if not _NAME_RE.fullmatch(name):
            return f"{kind} name {name!r} invalid: only alphanumeric characters, underscores, and dashes are allowed"
        return None
    from pach_airflow.errors import InvalidName

    try:
        (validate_branch_name if kind == "branch" else validate_repo_name)(name)
    except InvalidName as exc:
        return str(exc)
    return None


def _valid_pipeline_name(name: str) -> str | None:
    # Stricter than a repo name (ancestry.go:84, api_server.go:88); also a valid Airflow dag_id.
    if not name:
        return "pipeline name is empty: give a name of letters, digits, '_' or '-'"
    if not _NAME_RE.fullmatch(name):
        return f"pipeline name {name!r} invalid: only alphanumeric characters, underscores, and dashes are allowed"
    if not name[0].isalnum():
        return f"pipeline name {name!r} invalid: it must start with a letter or digit"
    if len(name) > MAX_PIPELINE_NAME:
        return (f"pipeline name {name!r} invalid: {len(name)} characters long, Pachyderm allows at most "
                f"{MAX_PIPELINE_NAME}")
    return None


def _valid_input_name(name: str) -> str | None:
    # Input names become /pfs/<name> and environment variable names. Pachyderm only reserves out and
    # .env (validateName); a name must also be one folder under /pfs, so no '/', '.', '..' or NUL.
    if not name:
        return "must not be empty"
    if name == "out":
        return "'out' is reserved for /pfs/out: give the input a different name"
    if name == ".env":
        return "'.env' is reserved for /pfs/.env: give the input a different name"
    if name in (".", "..") or "/" in name or "\0" in name or "=" in name:
        return f"{json.dumps(name)} is not a valid input name: it must be one folder name under /pfs"
    return None


def _default_project(v: str) -> str:
    if v not in ("", "default"):
        raise ValueError(f"project {v!r}: only the default project exists in pach_airflow; drop project")
    return v


def _no_commit(v: str) -> str:
    if v:
        raise ValueError("input cannot come from a commit (as in Pachyderm): give a branch instead")
    return v


def _refuse(what: str, why: str) -> str:
    return f"{what} is not supported by pach_airflow: {why}"


# --------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------

def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


class _Model(BaseModel):
    """Base of the spec models: unknown fields are errors, and lowerCamelCase keys are read as snake_case.

    Keys are renamed before validation (not with aliases) so error locations always use the snake_case
    names the docs use. A key given as ``null`` counts as not given, as protojson reads it."""

    model_config = ConfigDict(extra="forbid", validate_default=False)
    _camel_names: ClassVar[dict[str, str]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._camel_names = {_camel(n): n for n in cls.model_fields if _camel(n) != n}

    @model_validator(mode="before")
    @classmethod
    def _snake_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out: dict[Any, Any] = {}
        for key, value in data.items():
            name = cls._camel_names.get(key, key) if isinstance(key, str) else key
            if value is None:
                continue
            if name in out:
                raise ValueError(f"{_camel(name)!r} and {name!r} name the same field: give it once")
            out[name] = value
        return out


class Project(_Model):
    name: str = ""


class Pipeline(_Model):
    name: str
    project: Project | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if problem := _valid_pipeline_name(v):
            raise ValueError(problem)
        return v

    @field_validator("project")
    @classmethod
    def _project(cls, v: Project) -> Project:
        if v.name not in ("", "default"):
            raise ValueError(f"project {v.name!r}: only the default project exists in pach_airflow; "
                             "drop pipeline.project")
        return v


class SecretMount(_Model):
    name: str = ""
    key: str = ""
    mount_path: str = ""
    env_var: str = ""


class Transform(_Model):
    image: str = ""
    cmd: list[str]
    err_cmd: list[str] = []
    env: dict[str, str] = {}
    secrets: list[SecretMount] = []
    image_pull_secrets: list[str] = []
    stdin: list[str] = []
    err_stdin: list[str] = []
    accept_return_code: list[Int64] = []
    debug: StrictBool = False
    user: str = ""
    working_dir: str = ""
    dockerfile: str = ""
    memory_volume: StrictBool = False
    datum_batching: StrictBool = False

    @field_validator("datum_batching")
    @classmethod
    def _batching(cls, v: bool) -> bool:
        if v:
            raise ValueError(_refuse("datum_batching", "it needs `pachctl next datum` inside the image; "
                                     "use datum_set_spec to pack datums into fewer tasks instead"))
        return v


class TFJob(_Model):
    tf_job: str = ""


class ObjectStorageEgress(_Model):
    url: str = ""


class SQLFileFormat(_Model):
    type: str = ""
    columns: list[str] = []


class SQLSecret(_Model):
    name: str = ""
    key: str = ""


class SQLDatabaseEgress(_Model):
    url: str = ""
    file_format: SQLFileFormat | None = None
    secret: SQLSecret | None = None


class Egress(_Model):
    URL: str = ""
    object_storage: ObjectStorageEgress | None = None
    sql_database: SQLDatabaseEgress | None = None

    @field_validator("sql_database")
    @classmethod
    def _sql(cls, v: SQLDatabaseEgress) -> SQLDatabaseEgress:
        raise ValueError(_refuse("egress to a SQL database", "copy the output to object storage with "
                                 "egress.URL and load it from there"))


class Metadata(_Model):
    annotations: dict[str, str] = {}
    labels: dict[str, str] = {}


class Service(_Model):
    internal_port: Int64 = 0
    external_port: Int64 = 0
    ip: str = ""
    type: str = ""


class Spout(_Model):
    service: Service | None = None


class Trigger(_Model):
    branch: str = ""
    all: StrictBool = False
    rate_limit_spec: str = ""
    size: str = ""
    commits: Int64 = 0
    cron_spec: str = ""


class PropagationSpec(_Model):
    never: StrictBool = False


class PfsInput(_Model):
    """A PFS input: one datum per glob match in ``repo@branch``."""

    project: str = ""
    name: str = ""
    repo: str
    repo_type: str = ""
    branch: str = ""
    commit: str = ""
    glob: str
    join_on: str = ""
    outer_join: StrictBool = False
    group_by: str = ""
    lazy: StrictBool = False
    empty_files: StrictBool = False
    s3: StrictBool = False
    trigger: Trigger | None = None
    propagation_spec: PropagationSpec | None = None
    reference: StrictBool = False

    @field_validator("project")
    @classmethod
    def _project(cls, v: str) -> str:
        return _default_project(v)

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        if problem := _valid_repo_name(v):
            raise ValueError(problem)
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if problem := _valid_input_name(v):
            raise ValueError(problem)
        return v

    @field_validator("branch")
    @classmethod
    def _branch(cls, v: str) -> str:
        if v and (problem := _valid_repo_name(v, "branch")):
            raise ValueError(problem)
        return v

    @field_validator("repo_type")
    @classmethod
    def _repo_type(cls, v: str) -> str:
        if v in ("meta", "spec"):
            raise ValueError(_refuse(f"repo_type {v!r}", "pipelines have no system repos here; "
                                     "job and datum records are read with `pach-airflow list job/datum`"))
        if v not in ("", "user"):
            raise ValueError(f"repo_type must be user, got {_show(v)}")
        return v

    @field_validator("commit")
    @classmethod
    def _commit(cls, v: str) -> str:
        return _no_commit(v)

    @field_validator("glob")
    @classmethod
    def _glob(cls, v: str) -> str:
        if not v:
            raise ValueError('must not be empty (Pachyderm has no default glob; "/" takes the whole repo '
                             'as one datum)')
        if problem := _glob_problem(v):
            raise ValueError(problem)
        return v

    @field_validator("propagation_spec")
    @classmethod
    def _propagation(cls, v: PropagationSpec) -> PropagationSpec:
        if v.never:
            raise ValueError(_refuse("propagation_spec.never", "every commit to an input branch starts a "
                                     "job here; remove it, or read a branch you commit to only when a "
                                     "job should run"))
        return v

    @field_validator("trigger")
    @classmethod
    def _trigger(cls, v: Trigger) -> Trigger:
        raise ValueError(_refuse("trigger", "trigger branches are not implemented yet; commit to the "
                                 "input branch when the pipeline should run, or use a cron input"))


class CronInput(_Model):
    """A cron input: a tick file committed to ``repo`` on each tick of ``spec``."""

    name: str
    project: str = ""
    repo: str = ""
    commit: str = ""
    spec: str
    overwrite: StrictBool = False
    start: Timestamp | None = None

    @field_validator("project")
    @classmethod
    def _project(cls, v: str) -> str:
        return _default_project(v)

    @field_validator("commit")
    @classmethod
    def _commit(cls, v: str) -> str:
        return _no_commit(v)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if problem := _valid_input_name(v):
            raise ValueError(problem)
        return v

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        if v and (problem := _valid_repo_name(v)):
            raise ValueError(problem)
        return v

    @field_validator("spec")
    @classmethod
    def _spec(cls, v: str) -> str:
        parse_cron(v)  # raises ValueError with the reason
        return v


class Input(_Model):
    """One node of the input tree: exactly one of its fields is set."""

    pfs: PfsInput | None = None
    join: list[Input] | None = None
    group: list[Input] | None = None
    cross: list[Input] | None = None
    union: list[Input] | None = None
    cron: CronInput | None = None


class ParallelismSpec(_Model):
    constant: Int64 = 0

    @field_validator("constant")
    @classmethod
    def _constant(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"must not be negative, got {v}")
        return v


class GPUSpec(_Model):
    type: str = ""
    number: Int64 = 0

    @field_validator("number")
    @classmethod
    def _number(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"must not be negative, got {v}")
        return v


_QUANTITY_RE = re.compile(r"[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?")


def _quantity(v: str) -> str:
    if v and not _QUANTITY_RE.fullmatch(v):
        raise ValueError(f"{v!r} is not a Kubernetes quantity such as 512Mi, 2G or 1.5Gi")
    return v


class ResourceSpec(_Model):
    cpu: Float = 0.0
    memory: str = ""
    gpu: GPUSpec | None = None
    disk: str = ""

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, v: float) -> float:
        if v < 0:
            raise ValueError(f"must not be negative, got {v}")
        return v

    _memory = field_validator("memory", "disk")(_quantity)


class DatumSetSpec(_Model):
    number: Int64 = 0
    size_bytes: Int64 = 0
    per_worker: Int64 = 0

    @field_validator("number", "size_bytes", "per_worker")
    @classmethod
    def _non_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"must not be negative, got {v}")
        return v


class SchedulingSpec(_Model):
    node_selector: dict[str, str] = {}
    priority_class_name: str = ""


class Toleration(_Model):
    key: str = ""
    operator: TolerationOperator = "EMPTY"
    value: str = ""
    effect: TaintEffect = "ALL_EFFECTS"
    toleration_seconds: Int64 | None = None


class Determined(_Model):
    workspaces: list[str] = []


class PipelineSpec(_Model):
    """A Pachyderm 2.x pipeline spec (``CreatePipelineRequest``), field names in snake_case.

    Building one validates field types and the checks local to one field; :func:`validate` adds the
    rules across fields, and :func:`spec_from_dict` / :func:`parse_specs` / :func:`load_specs` do both.
    Defaults are filled in when the model is built (see the module docstring)."""

    pipeline: Pipeline
    tf_job: TFJob | None = None
    transform: Transform
    parallelism_spec: ParallelismSpec | None = None
    egress: Egress | None = None
    update: StrictBool = False
    output_branch: str = ""
    s3_out: StrictBool = False
    resource_requests: ResourceSpec | None = None
    resource_limits: ResourceSpec | None = None
    sidecar_resource_limits: ResourceSpec | None = None
    input: Input
    description: str = ""
    reprocess: StrictBool = False
    service: Service | None = None
    spout: Spout | None = None
    datum_set_spec: DatumSetSpec | None = None
    datum_timeout: Duration | None = None
    job_timeout: Duration | None = None
    salt: str = ""
    datum_tries: Int64 = 0
    scheduling_spec: SchedulingSpec | None = None
    pod_spec: JsonText = ""
    pod_patch: JsonText = ""
    spec_commit: dict[str, Any] | None = None
    metadata: Metadata | None = None
    reprocess_spec: str = ""
    autoscaling: StrictBool = False
    tolerations: list[Toleration] = []
    sidecar_resource_requests: ResourceSpec | None = None
    dry_run: StrictBool = False
    determined: Determined | None = None
    maximum_expected_uptime: Duration | None = None

    @field_validator("tf_job")
    @classmethod
    def _tf_job(cls, v: TFJob) -> TFJob:
        raise ValueError(_refuse("tf_job", "Kubeflow TFJobs are not run (Pachyderm says \"not supported "
                                 "yet\" too); use a transform"))

    @field_validator("service")
    @classmethod
    def _service(cls, v: Service) -> Service:
        raise ValueError(_refuse("service", "service pipelines are long-running servers and pach_airflow "
                                 "runs batch jobs only; deploy the server with Kubernetes directly"))

    @field_validator("spout")
    @classmethod
    def _spout(cls, v: Spout) -> Spout:
        raise ValueError(_refuse("spout", "spouts are long-running producers and pach_airflow runs batch "
                                 "jobs only; write to the repo with `pach-airflow put file` from a DAG or a cron "
                                 "pipeline instead"))

    @field_validator("s3_out")
    @classmethod
    def _s3_out(cls, v: bool) -> bool:
        if v:
            raise ValueError(_refuse("s3_out", "it needs Pachyderm's per-job S3 gateway sidecar; write "
                                     "outputs to /pfs/out"))
        return v

    @field_validator("determined")
    @classmethod
    def _determined(cls, v: Determined) -> Determined:
        raise ValueError(_refuse("determined", "the Determined integration is not available"))

    @field_validator("spec_commit")
    @classmethod
    def _spec_commit(cls, v: dict) -> dict:
        raise ValueError("spec_commit is set by Pachyderm itself and cannot appear in a spec: remove it")

    @field_validator("maximum_expected_uptime")
    @classmethod
    def _uptime(cls, v: timedelta) -> timedelta:
        raise ValueError(_refuse("maximum_expected_uptime", "there is no uptime monitor; use job_timeout "
                                 "to bound a job"))

    @field_validator("output_branch")
    @classmethod
    def _output_branch(cls, v: str) -> str:
        if v and (problem := _valid_repo_name(v, "branch")):
            raise ValueError(problem)
        return v

    @field_validator("reprocess_spec")
    @classmethod
    def _reprocess_spec(cls, v: str) -> str:
        if v and v not in REPROCESS_SPECS:
            raise ValueError(f"must be until_success or every_job, got {_show(v)}")
        return v

    @field_validator("datum_tries")
    @classmethod
    def _datum_tries(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"must not be negative, got {v} (0 means the default, 3)")
        return v

    @field_validator("datum_timeout", "job_timeout")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError(f"must be positive, got {format_duration(v)!r}")
        return v

    @field_validator("pod_patch")
    @classmethod
    def _pod_patch(cls, v: str) -> str:
        if not v:
            return v
        try:
            patch = json.loads(v)
        except ValueError as exc:
            raise ValueError(f"not valid JSON ({exc}); pod_patch is a JSON Patch (RFC 6902), a list "
                             "of operations") from None
        if not isinstance(patch, list) or not all(isinstance(op, dict) and "op" in op and "path" in op
                                                  for op in patch):
            raise ValueError('must be a JSON Patch (RFC 6902): a list of {"op", "path", ...} operations')
        return v

    @field_validator("pod_spec")
    @classmethod
    def _pod_spec(cls, v: str) -> str:
        if not v:
            return v
        try:
            pod = json.loads(v)
        except ValueError as exc:
            raise ValueError(f"not valid JSON ({exc}); pod_spec is a JSON object merged into the "
                             "pod spec") from None
        if not isinstance(pod, dict):
            raise ValueError("must be a JSON object (merged into the pod spec)")  # noqa: TRY004
        return v

    @model_validator(mode="after")
    def _defaults(self) -> PipelineSpec:
        _fill_defaults(self)
        return self


def _fill_defaults(spec: PipelineSpec) -> None:
    """Pachyderm's setPipelineDefaults / setInputDefaults; idempotent."""
    if not spec.transform.image:
        spec.transform.image = DEFAULT_IMAGE
    if not spec.datum_tries:
        spec.datum_tries = DEFAULT_DATUM_TRIES
    if not spec.output_branch:
        spec.output_branch = DEFAULT_BRANCH
    if not spec.reprocess_spec:
        spec.reprocess_spec = REPROCESS_SPECS[0]
    if spec.parallelism_spec is None:
        spec.parallelism_spec = ParallelismSpec(constant=1)
    elif spec.parallelism_spec.constant == 0:
        spec.parallelism_spec.constant = 1
    _input_defaults(spec.input, spec.pipeline.name)


def _input_defaults(inp: Input, pipeline: str) -> None:
    if inp.pfs is not None:
        if not inp.pfs.name and inp.pfs.repo != "out":  # a repo named out needs an explicit name
            inp.pfs.name = inp.pfs.repo
        if not inp.pfs.branch:
            inp.pfs.branch = DEFAULT_BRANCH
    if inp.cron is not None and not inp.cron.repo:
        inp.cron.repo = f"{pipeline}_{inp.cron.name}"
    for field in ("cross", "union", "join", "group"):
        children = getattr(inp, field)
        if children:
            for child in children:
                _input_defaults(child, pipeline)
            # Pachyderm sorts by input name so datum ids do not depend on the order in the file.
            children.sort(key=input_name)


def input_name(inp: Input) -> str:
    """The name of an input node: that of the first PFS or cron input in its subtree ("" if none)."""
    if inp.pfs is not None:
        return inp.pfs.name or inp.pfs.repo
    if inp.cron is not None:
        return inp.cron.name
    for field in ("cross", "join", "group", "union"):
        for child in getattr(inp, field) or ():
            if name := input_name(child):
                return name
    return ""


def iter_inputs(inp: Input | None) -> Iterator[PfsInput | CronInput]:
    """Every PFS and cron input below ``inp``, depth first, in (sorted) spec order."""
    if inp is None:
        return
    if inp.pfs is not None:
        yield inp.pfs
    if inp.cron is not None:
        yield inp.cron
    for field in ("cross", "join", "group", "union"):
        for child in getattr(inp, field) or ():
            yield from iter_inputs(child)


Input.model_rebuild()


# --------------------------------------------------------------------------------------------------------
# Globs and cron schedules
# --------------------------------------------------------------------------------------------------------

def _glob_problem(pattern: str) -> str | None:
    try:
        from pach_airflow.glob import compile_glob  # another engineer's module: check only if present
    except ImportError:
        return None
    from pach_airflow.errors import GlobError

    try:
        compile_glob(pattern)
    except GlobError as exc:
        return str(exc)
    return None


class CronSchedule:
    """A parsed cron input ``spec``; :meth:`next` gives the first tick strictly after a time (UTC), or
    None for ``@never``. Shared by the runners and Airflow scheduling so both tick alike.

    Attributes for schedulers: ``interval`` (the timedelta of ``@every``, else None), ``expr`` (the
    five-field cron expression, descriptors expanded, else None) and ``tz`` (the zone ``expr`` is read
    in: UTC unless the spec starts with ``TZ=``/``CRON_TZ=``)."""

    expr: str | None = None
    tz: Any = UTC

    def __init__(self, spec: str):
        self.spec = spec

    def next(self, after: datetime) -> datetime | None:
        raise NotImplementedError

    @property
    def interval(self) -> timedelta | None:
        """The fixed interval of an ``@every`` schedule, else None."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class _Never(CronSchedule):
    def next(self, after: datetime) -> datetime | None:
        return None


class _Every(CronSchedule):
    def __init__(self, spec: str, every: timedelta):
        super().__init__(spec)
        # robfig/cron: intervals under a second become a second; sub-second parts are dropped.
        self.every = max(timedelta(seconds=int(every.total_seconds())), timedelta(seconds=1))

    @property
    def interval(self) -> timedelta | None:
        return self.every

    def next(self, after: datetime) -> datetime | None:
        return _utc(after).replace(microsecond=0) + self.every


class _Cron(CronSchedule):
    def __init__(self, spec: str, expr: str, tz: Any):
        super().__init__(spec)
        self.expr = expr
        self.tz = tz

    def next(self, after: datetime) -> datetime | None:
        from croniter import CroniterBadDateError, croniter

        start = _utc(after).astimezone(self.tz)
        try:
            return _utc(croniter(self.expr, start).get_next(datetime))
        except CroniterBadDateError:  # e.g. "0 0 31 2 *": no such day, so never (robfig gives up too)
            return None


_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}


def parse_cron(cron_spec: str) -> CronSchedule:
    """Parse a cron input ``spec`` as Pachyderm does (robfig/cron ``ParseStandard`` plus ``@never``):
    five fields, ``@hourly``-style descriptors, ``@every <Go duration>``, an optional ``TZ=<zone>``
    prefix. Raises ValueError with the reason."""
    if not isinstance(cron_spec, str) or not cron_spec.strip():
        raise ValueError('empty cron spec: give e.g. "@every 1h" or "*/10 * * * *"')
    text = cron_spec.strip()
    tz: Any = UTC
    if text.startswith(("TZ=", "CRON_TZ=")):
        zone, _, text = text.partition("=")[2].partition(" ")
        text = text.strip()
        try:
            from zoneinfo import ZoneInfo

            tz = ZoneInfo(zone)
        except (ValueError, KeyError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown time zone {zone!r} in cron spec ({exc.__class__.__name__})") from None
    if text == "@never":
        return _Never(cron_spec)
    if text.startswith("@every"):
        rest = text[len("@every"):]
        if not rest[:1].isspace():
            raise ValueError(f"cron spec {cron_spec!r}: write @every <duration>, e.g. @every 1h30m")
        try:
            return _Every(cron_spec, parse_go_duration(rest))
        except ValueError as exc:
            raise ValueError(f"cron spec {cron_spec!r}: {exc}") from None
    if text.startswith("@"):
        if text not in _DESCRIPTORS:
            raise ValueError(f"cron spec {cron_spec!r}: unknown descriptor; use one of "
                             f"{', '.join(_DESCRIPTORS)}, @every <duration> or @never")
        return _Cron(cron_spec, _DESCRIPTORS[text], tz)
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"cron spec {cron_spec!r}: expected 5 fields (minute hour day-of-month month "
                         f"day-of-week), got {len(fields)}")
    from croniter import croniter

    if not croniter.is_valid(" ".join(fields)):
        raise ValueError(f"cron spec {cron_spec!r} does not parse: check each field's range and syntax")
    return _Cron(cron_spec, " ".join(fields), tz)


# --------------------------------------------------------------------------------------------------------
# Rules across fields
# --------------------------------------------------------------------------------------------------------

def _check(spec: PipelineSpec) -> list[tuple[str, str]]:
    """The rules that involve more than one field, as (field path, message) pairs."""
    problems = _check_transform(spec.transform)
    _check_input(spec.input, "input", spec.pipeline.name, problems, inside=None, above=frozenset())
    add = lambda loc, msg: problems.append((loc, msg))
    if spec.datum_set_spec is not None:
        d = spec.datum_set_spec
        if d.per_worker and (d.number or d.size_bytes):
            add("datum_set_spec.per_worker", "cannot be set together with number or size_bytes")
    if spec.egress is not None:
        e = spec.egress
        if e.URL and e.object_storage is not None:
            add("egress", "give either URL or object_storage, not both")
        elif not e.URL and (e.object_storage is None or not e.object_storage.url) and e.sql_database is None:
            add("egress.URL", "field required (where to copy the output, e.g. s3://bucket/prefix)")
        url = e.URL or (e.object_storage.url if e.object_storage else "")
        if url and not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", url):
            add("egress.URL" if e.URL else "egress.object_storage.url",
                f"{url!r} is not a URL such as s3://bucket/prefix")
    for i, t in enumerate(spec.tolerations):
        if t.operator == "EXISTS" and t.value:
            add(f"tolerations[{i}].value", "must be empty when operator is EXISTS")
    for loc, res in (("resource_requests", spec.resource_requests), ("resource_limits", spec.resource_limits),
                     ("sidecar_resource_requests", spec.sidecar_resource_requests),
                     ("sidecar_resource_limits", spec.sidecar_resource_limits)):
        if res is not None and res.gpu is not None and res.gpu.number and not res.gpu.type:
            add(f"{loc}.gpu.type", "field required when gpu.number is set (e.g. nvidia.com/gpu)")
    return problems


def _check_transform(transform: Transform) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    add = lambda loc, msg: problems.append((loc, msg))
    if not transform.cmd:
        add("transform.cmd", "field required (Pachyderm's worker refuses a pipeline with no command)")
    for i, secret in enumerate(transform.secrets):
        loc = f"transform.secrets[{i}]"
        if not secret.name:
            add(f"{loc}.name", "field required (the Kubernetes secret to read)")
        if secret.env_var and not secret.key:
            add(f"{loc}.key", "field required when env_var is set (the key of the secret to put in it)")
        if not secret.env_var and not secret.mount_path:
            add(loc, "give mount_path, env_var (with key), or both")
    for key in transform.env:
        if not key or "=" in key or "\0" in key:
            add(f"transform.env[{json.dumps(key)}]", "not a valid environment variable name")
    return problems


def _check_parts(doc: dict, failed: set[Any]) -> list[tuple[str, str]]:
    """The cross-field rules of the parts of a spec that validated, when another part did not: so a
    file's problems all come out in one run, not one part per run."""
    problems: list[tuple[str, str]] = []
    if "transform" not in failed and isinstance(doc.get("transform"), dict):
        try:
            problems += _check_transform(Transform.model_validate(doc["transform"]))
        except ValidationError:
            pass
    if "input" not in failed and isinstance(doc.get("input"), dict):
        pipeline = doc.get("pipeline")
        name = pipeline.get("name") if isinstance(pipeline, dict) else None
        name = name if isinstance(name, str) else ""
        try:
            inp = Input.model_validate(doc["input"])
        except ValidationError:
            return problems
        _input_defaults(inp, name)
        _check_input(inp, "input", name, problems, inside=None, above=frozenset())
    return problems


def _check_input(inp: Input, loc: str, pipeline: str, problems: list[tuple[str, str]],
                 inside: str | None, above: frozenset[str]) -> set[str]:
    """Check one input node; returns the input names a datum of this node can hold.

    ``inside`` is the nearest enclosing combinator (join, group, union, cross) or None; ``above`` holds
    every combinator kind on the way up."""
    add = lambda where, msg: problems.append((where, msg))
    kinds = [f for f in ("pfs", "cron", "cross", "union", "join", "group") if getattr(inp, f) is not None]
    if not kinds:
        add(loc, "empty input: set one of pfs, cron, cross, union, join, group")
        return set()
    if len(kinds) > 1:
        add(loc, f"multiple input types set ({', '.join(kinds)}): give exactly one per input")
        return set()
    kind = kinds[0]
    if kind == "pfs":
        pfs = inp.pfs
        assert pfs is not None
        if pfs.repo == "out" and not pfs.name:
            add(f"{loc}.pfs.name", "field required for a repo named 'out' (/pfs/out is the output): give the "
                                   "input another name")
        if pfs.repo == pipeline:
            add(f"{loc}.pfs.repo", f"{pfs.repo!r} is this pipeline's own output repo: a pipeline cannot "
                                   "read its own output")
        if pfs.s3:
            # The worker has no S3 gateway sidecar (worker/stage.py refuses such datums): refuse here,
            # before anything is written, with Pachyderm's own s3 rules below. Lift once staging serves s3.
            add(f"{loc}.pfs.s3", _refuse("s3", "there is no per-job S3 gateway sidecar yet; remove "
                                         "\"s3\": true and read the files under /pfs/<input> instead"))
            if pfs.glob != "/":
                add(f"{loc}.pfs.glob", f"s3 inputs must use glob \"/\" (the whole repo is one datum), got "
                                       f"{pfs.glob!r}")
            if pfs.lazy:
                add(f"{loc}.pfs.lazy", "cannot be combined with s3")
            if pfs.empty_files:
                add(f"{loc}.pfs.empty_files", "cannot be combined with s3")
            # Pachyderm refuses s3 inputs anywhere below a join, group or union (ContainsS3Inputs).
            for kind_above in ("join", "group", "union"):
                if kind_above in above:
                    add(f"{loc}.pfs.s3", f"s3 inputs cannot be inside a {kind_above}; only cross them")
                    break
        if inside == "join" and not pfs.join_on:
            add(f"{loc}.pfs.join_on", "field required in a join input (e.g. \"$1\" with a glob such as "
                                      "\"/(*).txt\")")
        if inside == "group" and not pfs.group_by:
            add(f"{loc}.pfs.group_by", "field required in a group input (e.g. \"$1\" with a glob such as "
                                       "\"/(*)-*.txt\")")
        return {pfs.name or pfs.repo}
    if kind == "cron":
        cron = inp.cron
        assert cron is not None
        if inside in ("join", "group"):
            add(f"{loc}.cron", f"a cron input cannot be inside a {inside} (it has no join_on/group_by key)")
        return {cron.name}
    children: list[Input] = getattr(inp, kind)
    if not children:
        add(f"{loc}.{kind}", "needs at least one input")
        return set()
    names_per_child = []
    for i, child in enumerate(children):
        names_per_child.append(_check_input(child, f"{loc}.{kind}[{i}]", pipeline, problems, kind,
                                                   above | {kind}))
        # In a group over a join (or cross, union) the inner files are regrouped by their own group_by
        # (Pachyderm's GroupJoin), so those PFS inputs need group_by too.
        if inside == "group" and kind != "group":
            _require_group_by(child, f"{loc}.{kind}[{i}]", problems)
    if kind == "union":
        return set().union(*names_per_child)
    seen: dict[str, int] = {}
    for i, names in enumerate(names_per_child):
        for name in sorted(names):
            if name in seen:
                add(f"{loc}.{kind}[{i}]", f"input name {name!r} is used twice in one datum (also in "
                                          f"{kind}[{seen[name]}]): give each input a unique name")
            else:
                seen[name] = i
    return set(seen)


def _require_group_by(inp: Input, loc: str, problems: list[tuple[str, str]]) -> None:
    # Files of a compound input inside a group are regrouped by each PFS input's own group_by.
    if inp.pfs is not None:
        if not inp.pfs.group_by:
            problems.append((f"{loc}.pfs.group_by", "field required: inputs inside a group need group_by"))
        return
    for field in ("cross", "join", "group", "union"):
        for i, child in enumerate(getattr(inp, field) or ()):
            if field != "group":
                _require_group_by(child, f"{loc}.{field}[{i}]", problems)


def spec_warnings(spec: PipelineSpec) -> list[tuple[str, str]]:
    """Things that are valid but probably not meant, as (field path, message) pairs; they do not fail
    validation (``pach-airflow validate`` prints them as warnings, as ``pachctl`` does for images)."""
    out: list[tuple[str, str]] = []
    image = spec.transform.image
    last = image.rsplit("/", 1)[-1]
    if "@" not in last and (":" not in last or last.endswith(":latest")):
        out.append(("transform.image", (f"{image!r} has no tag or uses :latest; pin a tag so every "
                                       "datum runs the same code")))
    _input_warnings(spec.input, "input", None, out)
    return out


def _input_warnings(inp: Input, loc: str, inside: str | None, out: list[tuple[str, str]]) -> None:
    if inp.pfs is not None:
        pfs = inp.pfs
        if pfs.glob.rstrip("/").endswith("**"):
            out.append((f"{loc}.pfs.glob", (f"{pfs.glob!r} matches every directory as well as every file "
                                           "(as in Pachyderm), so datums overlap; use /*/* etc. for files")))
        if pfs.join_on and inside != "join":
            out.append((f"{loc}.pfs.join_on", "has no effect outside a join"))
        if pfs.outer_join and inside != "join":
            out.append((f"{loc}.pfs.outer_join", "has no effect outside a join"))
    if inp.cron is not None:
        interval = parse_cron(inp.cron.spec).interval
        if interval is not None and interval < timedelta(minutes=1):
            out.append((f"{loc}.cron.spec", (f"ticks every {format_duration(interval)}: each tick is a "
                                            "commit and a job; Pachyderm advises at least a minute")))
    for field in ("cross", "union", "join", "group"):
        for i, child in enumerate(getattr(inp, field) or ()):
            _input_warnings(child, f"{loc}.{field}[{i}]", field, out)


# --------------------------------------------------------------------------------------------------------
# Parsing, validation, dumping
# --------------------------------------------------------------------------------------------------------

# Fields of Pachyderm 1.x specs that 2.x (whose request we read) no longer has.
_LEGACY_FIELDS = {
    "atom": "atom inputs are called pfs since Pachyderm 1.8: rename atom to pfs",
    "git": "git inputs were removed in Pachyderm 2.x: commit the repository's files to a repo instead",
    "enable_stats": "removed in Pachyderm 2.x (datum stats are always kept): delete it",
    "enableStats": "removed in Pachyderm 2.x (datum stats are always kept): delete it",
    "standby": "removed in Pachyderm 2.x (autoscaling replaced it): delete it",
    "cache_size": "removed in Pachyderm 2.x: delete it",
    "max_queue_size": "removed in Pachyderm 2.x: delete it",
    "chunk_spec": "removed in Pachyderm 2.x (datum_set_spec replaced it)",
    "hashtree_spec": "removed in Pachyderm 2.x: delete it",
    "batch": "removed in Pachyderm 2.x: delete it",
}

_MISSING_HINTS = {
    "glob": "Pachyderm has no default glob",
    "repo": "the repo to read, e.g. images",
    "spec": 'a schedule such as "@every 1h" or "*/10 * * * *"',
    "pipeline": "e.g. pipeline: {name: edges}",
    "transform": "the container to run: transform: {image, cmd}",
    "cmd": "Pachyderm's worker refuses a pipeline with no command",
    "input": "pach_airflow runs pipelines that read inputs; spouts and services are not supported",
}


_PLAIN_KEY_RE = re.compile(r"[A-Za-z0-9_.@-]+")


def _loc_text(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY_RE.fullmatch(str(part)):
            out += f"[{json.dumps(str(part))}]"  # odd keys (spaces, newlines) stay on one line, quoted
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out or "(spec)"


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model class whose field the location ends in (for "did you mean" hints)."""
    cls: type[BaseModel] | None = PipelineSpec
    for part in loc[:-1]:
        if cls is None:
            return None
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(str(part))
        cls = _sub_model(field.annotation) if field else None
    return cls


def _sub_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if found := _sub_model(arg):
            return found
    return None


def _error_line(err: Any) -> tuple[str, str]:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "missing":
        hint = _MISSING_HINTS.get(str(loc[-1]) if loc else "")
        return _loc_text(loc), "field required" + (f" ({hint})" if hint else "")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        if key in _LEGACY_FIELDS:
            return _loc_text(loc), f"unknown field: {_LEGACY_FIELDS[key]}"
        cls = _model_at(loc)
        snake = list(cls.model_fields) if cls else []
        # Suggest in the spelling the file uses: lowerCamelCase keys get lowerCamelCase hints.
        names = [_camel(n) for n in snake] if any(c.isupper() for c in key) else snake
        same_letters = [n for n in snake if n.lower() == key.lower()]  # "url" for "URL"
        close = same_letters or difflib.get_close_matches(key, names, n=1, cutoff=0.6) or \
            difflib.get_close_matches(key, snake + [_camel(n) for n in snake], n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return _loc_text(loc), f"unknown field{hint}"
    value = err.get("input")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return _loc_text(loc), f"expected an object (a mapping), got {_show(value)}"
    if kind == "list_type":
        return _loc_text(loc), f"expected a list, got {_show(value)}"
    if kind == "string_type":
        hint = " (quote it in YAML)" if _is_number(value) or isinstance(value, bool) else ""
        return _loc_text(loc), f"expected a string, got {_show(value)}{hint}"
    if kind == "bool_type":
        return _loc_text(loc), f"expected true or false, got {_show(value)}"
    if kind == "value_error":
        msg = str(err["msg"]).removeprefix("Value error, ")
        return _loc_text(loc), msg
    msg = str(err["msg"])
    return _loc_text(loc), msg[:1].lower() + msg[1:]


def _label(doc: Any, index: int, total: int) -> str:
    pipeline = doc.get("pipeline") if isinstance(doc, dict) else None
    name = pipeline.get("name") if isinstance(pipeline, dict) else None
    if isinstance(name, str) and name:
        return f"pipeline {name}" if name.isprintable() else f"pipeline {json.dumps(name)}"
    return f"spec {index + 1}" if total > 1 else "spec"


def _one_line(text: str) -> str:
    # Problems are one line each, whatever odd characters the spec holds.
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _validate_doc(doc: Any, label: str, source: str) -> tuple[PipelineSpec | None, list[str]]:
    prefix = f"{source}: {label}: "
    if not isinstance(doc, dict):
        return None, [(f"{prefix}expected a pipeline spec (a mapping with pipeline, transform, input), "
                       f"got {_show(doc)}")]
    try:
        spec = PipelineSpec.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors()
        lines = [prefix + ": ".join(_error_line(e)) for e in errors]
        failed = {e["loc"][0] for e in errors if e["loc"]}
        lines += [f"{prefix}{loc}: {msg}" for loc, msg in _check_parts(doc, failed)]
        return None, [_one_line(line) for line in lines]
    except RecursionError:
        return None, [f"{prefix}input: nested too deeply"]
    problems = [_one_line(f"{prefix}{loc}: {msg}") for loc, msg in _check(spec)]
    return (None if problems else spec), problems


def spec_from_dict(doc: Any, source: str = "<spec>") -> PipelineSpec:
    """Validate one spec given as a dict (e.g. a stored normalised spec); raises :class:`SpecError`."""
    spec, problems = _validate_doc(doc, _label(doc, 0, 1), source)
    if problems or spec is None:
        raise SpecError(problems)
    return spec


def validate(spec: PipelineSpec, source: str = "<spec>") -> PipelineSpec:
    """Check a spec built in code (or changed after parsing) with every rule, as a file would be.

    Returns the spec (with defaults filled in); raises :class:`SpecError` listing every problem."""
    return spec_from_dict(dump_spec(spec), source)


def _documents(text: str, source: str) -> list[Any]:
    """The specs in a file: YAML documents, a JSON stream, or a list of specs in either."""
    stripped = text.lstrip()
    docs: list[Any] = []
    if stripped.startswith(("{", "[")):
        decoder = json.JSONDecoder()
        pos = 0
        try:
            while True:
                while pos < len(text) and text[pos].isspace():
                    pos += 1
                if pos >= len(text):
                    break
                obj, pos = decoder.raw_decode(text, pos)
                docs.append(obj)
        except json.JSONDecodeError as exc:
            if not docs and not _looks_like_json_only(source):
                return _yaml_documents(text, source)  # flow-style YAML also starts with { or [
            raise SpecError(f"{source}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}") from None
    else:
        docs = _yaml_documents(text, source)
    out: list[Any] = []
    for doc in docs:
        if isinstance(doc, list):
            out.extend(doc)
        elif doc is not None:
            out.append(doc)
    return out


def _looks_like_json_only(source: str) -> bool:
    return source.endswith(".json")


def _yaml_documents(text: str, source: str) -> list[Any]:
    try:
        return list(yaml.load_all(text, Loader=_SpecLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{source}: {where}invalid YAML: {what}") from None


class _SpecLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml when built in: parse time matters
    """SafeLoader that refuses duplicate keys (protojson refuses them too)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value",
                                                    key_node.start_mark) from None
        if key in out:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_specs(text: str, source: str = "<stdin>") -> list[PipelineSpec]:
    """Every spec in ``text`` (JSON or YAML; several documents or a list), validated, defaults filled in.

    Raises :class:`SpecError` with every problem of every spec, one line each, prefixed by ``source``."""
    docs = _documents(text, source)
    if not docs:
        raise SpecError(f"{source}: no pipeline spec found (the file is empty)")
    specs: list[PipelineSpec] = []
    problems: list[str] = []
    first_seen: dict[str, int] = {}
    for i, doc in enumerate(docs):
        label = _label(doc, i, len(docs))
        spec, doc_problems = _validate_doc(doc, label, source)
        problems += doc_problems
        if spec is not None:
            name = spec.pipeline.name
            if name in first_seen:
                problems.append(f"{source}: {label}: pipeline.name: pipeline {name!r} is defined twice in "
                                f"this file (also spec {first_seen[name] + 1})")
            first_seen.setdefault(name, i)
            specs.append(spec)
    if problems:
        raise SpecError(problems)
    return specs


def load_specs(path: str | Path) -> list[PipelineSpec]:
    """Every spec in the JSON or YAML file at ``path``; problems name ``path``. See :func:`parse_specs`."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise SpecError(f"{source}: is a directory, not a spec file") from None
    except UnicodeDecodeError:
        raise SpecError(f"{source}: not UTF-8 text; spec files are JSON or YAML") from None
    except OSError as exc:
        raise SpecError(f"{source}: cannot read: {exc.strerror}") from None
    return parse_specs(text, source)


def dump_spec(spec: PipelineSpec) -> dict[str, Any]:
    """The normalised spec as a JSON-able dict with snake_case keys: fields at their zero value are left
    out (as protojson does), defaults that were filled in are kept. ``spec_from_dict(dump_spec(s)) == s``."""
    return spec.model_dump(mode="json", exclude_defaults=True)

