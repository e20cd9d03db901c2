"""Pipeline spec → Airflow DAG: tasks, mapping, schedule, assets, and what each task does at run time.

One DAG per pipeline, ``dag_id`` = the pipeline's name::

    plan ──▶ process (mapped over datum sets) ──▶ finish        (finish emits pfs/<output repo>@<branch>)
      └───▶ has_backlog ──▶ next_job                            (drains the input commits still waiting)

**What starts a run.**  Every PFS input is the Asset ``pfs/<repo>@<branch>`` (``uri`` ``pfs://<repo>/<branch>``).
An input that is another pipeline's output (a pipeline known to the loader) is scheduled on that Asset,
whose events the upstream DAG's ``finish`` task emits, so Airflow's Assets view shows the lineage.
Every other input repo gets an ``AssetWatcher`` running :class:`pach_airflow.triggers.CommitTrigger` in
the triggerer. Cron inputs become the DAG's timetable (several crons: ``MultipleCronTriggerTimetable``;
``@every``: ``DeltaTriggerTimetable``); with PFS inputs too, ``AssetOrTimeSchedule`` combines both.
``airflow dags trigger <pipeline>`` runs on the current heads, ``--conf '{"commits": {"<repo>": "<id>"}}'``
pins commits, ``--conf '{"run_cron": true}'`` writes a tick now into every cron input (``pachctl run
cron``). Any other conf key, an input repo the pipeline does not read, or a commit id that is not one
fails the ``plan`` task at once, before anything is written.

**One job per input commit, in order.**  Airflow folds several asset events into one run, and a run
may even start when nothing is new (an event repeated after a triggerer restart). So events only wake
the DAG up; ``plan`` works out the input commits that have no job yet -- the commits of each input
branch after the one the pipeline's last job pinned -- and runs a job for the oldest one, pinning the
other inputs to the commits they had at that moment (commit ids sort by time). If more commits wait,
``has_backlog``/``next_job`` queue another run of this DAG with ``{"drain": true}`` (a
``TriggerDagRunOperator`` on itself); ``max_active_runs=1`` starts it once this run ends, so the backlog
drains one job per run, oldest first, and output commits stay in input order. This is done beside
``finish`` rather than after it so that a failed job still fails the run (``finish`` stays a leaf)
while the commits after it still get their jobs, as in Pachyderm. The first job of a pipeline runs on
the input heads only, not on their history (Pachyderm does the same).

**Cron inputs.**  ``plan`` first writes the due ticks into each cron repo (``<pipeline>_<name>``): one
commit per tick, an empty file named by the tick time in RFC 3339 UTC, ``overwrite`` deleting the
older tick files in the same commit; missed ticks are caught up one commit each (reference §7). Each
tick commit then gets its own job through the backlog above.

**Mapping and retries.**  ``plan`` returns only ``[{"set_id", "label"}]`` (XCom stays small); ``process``
is mapped over it, labelled by the set's first datum (``map_index_template``), at most
``parallelism_spec.constant`` at once (``max_active_tis_per_dagrun``). Pachyderm's ``datum_tries`` are
per datum and live inside the shim, so an Airflow retry would rerun a whole set: ``process`` has one
retry, for the machinery failing (a lost worker), and fails at once, without a retry, when user code
failed a datum. ``finish`` runs whatever the sets did and fails the run with the job's reason when the
job failed.

Nothing here touches the store or reads the store URL while compiling; tasks do at run time.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from pach_airflow.spec import PipelineSpec

log = logging.getLogger(__name__)

START_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
CONF_KEYS = ("commits", "drain", "run_cron")
TAG_LIMIT = 100  # Airflow's DagTag.name length
LABEL_LIMIT = 80
SET_LABEL_ANNOTATION = "pach-airflow/datums"


# -- inputs -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RepoInput:
    """A leaf input the DAG watches: a PFS input's branch, or a cron input's tick repo (branch master)."""

    name: str
    repo: str
    branch: str
    cron: Any = None  # the spec's cron input, for tick repos

    @property
    def asset_name(self) -> str:
        return asset_name(self.repo, self.branch)


def asset_name(repo: str, branch: str) -> str:
    return f"pfs/{repo}@{branch}"


def asset_uri(repo: str, branch: str) -> str:
    return f"pfs://{repo}/{branch}"


def make_asset(repo: str, branch: str, watchers: list | None = None):
    from airflow.sdk import Asset

    return Asset(name=asset_name(repo, branch), uri=asset_uri(repo, branch), group="pfs",
                 watchers=watchers or [])


def iter_inputs(node: Any) -> Iterator[RepoInput]:
    """Every PFS and cron leaf of an input tree (``spec.iter_inputs``), as the branches the DAG watches."""
    from pach_airflow.spec import CronInput
    from pach_airflow.spec import iter_inputs as leaves

    for leaf in leaves(node):
        if isinstance(leaf, CronInput):
            yield RepoInput(leaf.name, leaf.repo, "master", leaf)
        else:
            yield RepoInput(leaf.name or leaf.repo, leaf.repo, leaf.branch or "master")


def input_branches(spec: PipelineSpec) -> list[RepoInput]:
    """The pipeline's input branches, one per (repo, branch), first occurrence kept."""
    seen: dict[tuple[str, str], RepoInput] = {}
    for inp in iter_inputs(spec.input):
        seen.setdefault((inp.repo, inp.branch), inp)
    return list(seen.values())


def output_branch(spec: PipelineSpec) -> tuple[str, str]:
    return spec.pipeline.name, (getattr(spec, "output_branch", None) or "master")


# -- schedule -----------------------------------------------------------------------------------------

def cron_timetable(cron_specs: Iterable[str]):
    """The timetable that wakes the DAG whenever one of the cron inputs ticks (``None``: never).

    Cron specs are parsed by ``spec.parse_cron``, the parser the tick writer uses too.
    """
    from airflow.sdk import CronTriggerTimetable, DeltaTriggerTimetable, MultipleCronTriggerTimetable

    from pach_airflow.spec import parse_cron

    exprs: dict[str, str] = {}  # expression -> time zone name
    deltas: list[dt.timedelta] = []
    for raw in cron_specs:
        schedule = parse_cron(raw)
        if schedule.interval is not None:
            deltas.append(schedule.interval)
        elif getattr(schedule, "expr", None):
            exprs[schedule.expr] = str(getattr(schedule, "tz", None) or "UTC")
        # else @never: no wake-ups of its own
    if deltas:
        # Airflow cannot combine a delta with cron expressions; waking at the shortest interval is
        # enough, since plan writes every tick that is due, whichever cron input it belongs to.
        shortest = min(deltas)
        if exprs:
            shortest = min(shortest, dt.timedelta(minutes=1))
        return DeltaTriggerTimetable(shortest)
    if not exprs:
        return None
    zones = set(exprs.values())
    zone = zones.pop() if len(zones) == 1 else "UTC"
    if len(exprs) == 1:
        return CronTriggerTimetable(next(iter(exprs)), timezone=zone)
    return MultipleCronTriggerTimetable(*sorted(exprs), timezone=zone)


def build_schedule(spec: PipelineSpec, *, pipeline_outputs: set[tuple[str, str]] | frozenset = frozenset()):
    """The DAG's ``schedule``: input Assets (watched or fed by upstream DAGs), cron timetable, or both."""
    from airflow.sdk import AssetAny, AssetOrTimeSchedule, AssetWatcher

    from pach_airflow.triggers import CommitTrigger

    assets = []
    crons = []
    for inp in input_branches(spec):
        if inp.cron is not None:
            crons.append(inp.cron.spec)
            continue
        watchers = []
        if (inp.repo, inp.branch) not in pipeline_outputs:
            watchers = [AssetWatcher(name=f"pach_commits_{inp.repo}_{inp.branch}",
                                     trigger=CommitTrigger(repo=inp.repo, branch=inp.branch))]
        assets.append(make_asset(inp.repo, inp.branch, watchers))
    timetable = cron_timetable(crons) if crons else None
    if assets and timetable is not None:
        return AssetOrTimeSchedule(timetable=timetable, assets=AssetAny(*assets))
    if assets:
        return AssetAny(*assets)
    return timetable


# -- DAG metadata -------------------------------------------------------------------------------------

def _dump(spec: PipelineSpec) -> dict:
    from pach_airflow.spec import dump_spec

    return dump_spec(spec)


def doc_md(spec: PipelineSpec, source: str | None) -> str:
    """The DAG's docs: what the pipeline does, where its spec lives, and the normalised spec itself."""
    import yaml

    name = spec.pipeline.name
    out_repo, out_branch = output_branch(spec)
    lines = [f"### Pachyderm pipeline `{name}`", ""]
    if getattr(spec, "description", None):
        lines += [spec.description, ""]
    if source:
        lines += [f"Spec file: `{source}`", ""]
    ins = input_branches(spec)
    if ins:
        lines.append("Inputs: " + ", ".join(
            f"`{i.repo}@{i.branch}`" + (f" (cron `{i.cron.spec}`)" if i.cron is not None else "") for i in ins))
    lines += [f"Output: `{out_repo}@{out_branch}`", "",
              (f"[Repos, jobs and datums of this pipeline](/dags/{name}/plugin/pach-pipeline) · "
               "[all repos](/plugin/pach)"), "",
              'Run by hand: `airflow dags trigger ' + name + '` (current heads) or with '
              '`--conf \'{"commits": {"<repo>": "<commit id>"}}\'` to pin input commits.', "",
              "```yaml", yaml.dump(_dump(spec), Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                                   sort_keys=False).rstrip(), "```"]
    return "\n".join(lines)


def tags(spec: PipelineSpec) -> list[str]:
    out = ["pipeline"]
    for inp in input_branches(spec):
        out.append(f"cron:{inp.name}" if inp.cron is not None else f"input:{inp.repo}")
    return [t[:TAG_LIMIT] for t in dict.fromkeys(out)]


def params(spec: PipelineSpec) -> dict:
    from airflow.sdk import Param

    repos = sorted({i.repo for i in input_branches(spec)})
    return {
        "commits": Param(
            {}, type="object", additionalProperties={"type": "string"},
            description="Input commits to pin, {\"<repo>\": \"<commit id>\"}; inputs not named run on their "
                        "branch heads. Input repos: " + (", ".join(repos) or "none"),
        ),
    }


# -- compile ------------------------------------------------------------------------------------------

def compile_pipeline(spec: PipelineSpec, *, source: str | None = None,
                     pipeline_outputs: set[tuple[str, str]] | frozenset = frozenset(),
                     runner: str | None = None) -> DAG:
    """One pipeline spec → its DAG (see the module docstring for the shape).

    ``source``: the spec file (shown in the DAG's docs). ``pipeline_outputs``: the (repo, branch) pairs
    that pipelines known to the loader write; inputs among them are scheduled on the upstream DAG's
    Asset instead of a commit watcher. ``runner``: ``local`` or ``kubernetes`` (default: config).
    """
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
    from airflow.sdk import DAG, task

    from pach_airflow import airflow_config

    runner = runner or airflow_config.runner()
    name = spec.pipeline.name
    k8s_kwargs = _kubernetes_kwargs(spec) if runner == "kubernetes" else None
    out_asset = make_asset(*output_branch(spec))
    parallelism = max(1, int(getattr(getattr(spec, "parallelism_spec", None), "constant", 1) or 1))

    with DAG(
        dag_id=name,
        description=(getattr(spec, "description", None) or f"Pachyderm pipeline {name}")[:200],
        doc_md=doc_md(spec, source),
        schedule=build_schedule(spec, pipeline_outputs=pipeline_outputs),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=tags(spec),
        params=params(spec),
        default_args={"owner": "pach_airflow"},
        # A Pachyderm pipeline runs as soon as it is created; `pach-airflow stop pipeline` pauses it.
        is_paused_upon_creation=False,
        # Registered by the loader (module globals) only once complete: a spec that fails halfway
        # must leave no half-built DAG behind for the DagBag to find.
        auto_register=False,
    ) as dag:

        @task(task_id="plan", retries=0)
        def plan() -> list[dict]:
            from airflow.sdk import get_current_context

            context = get_current_context()
            result = run_plan(spec, context, upstream=pipeline_outputs)
            # Only the set list is the return value (mapping needs it); the rest goes under own keys.
            for key in ("job_id", "backlog", "commits"):
                context["ti"].xcom_push(key=key, value=result[key])
            return result["sets"]

        @task.short_circuit(task_id="has_backlog")
        def has_backlog() -> bool:
            from airflow.sdk import get_current_context

            return bool(get_current_context()["ti"].xcom_pull(task_ids="plan", key="backlog"))

        @task(task_id="finish", trigger_rule="all_done", outlets=[out_asset], retries=0)
        def finish() -> dict:
            from airflow.sdk import get_current_context

            return run_finish(spec, get_current_context(), out_asset)

        planned = plan()
        if k8s_kwargs is not None:
            processed = _kubernetes_process(spec, planned, parallelism, k8s_kwargs)
        else:
            @task(task_id="process", map_index_template="{{ pach_set_label }}", retries=1,
                  retry_delay=dt.timedelta(seconds=5), max_active_tis_per_dagrun=parallelism)
            def process(item: dict) -> dict:
                from airflow.sdk import get_current_context

                return run_process(spec, get_current_context(), item)

            processed = process.expand(item=planned)
        processed >> finish()
        planned >> has_backlog() >> TriggerDagRunOperator(
            task_id="next_job", trigger_dag_id=name, conf={"drain": True}, wait_for_completion=False)
    return dag


def _kubernetes_kwargs(spec: PipelineSpec) -> dict[str, Any]:
    """The common KubernetesPodOperator kwargs of the pipeline's pods (the kubernetes runner's module)."""
    from pach_airflow.errors import RunnerError

    try:
        from pach_airflow.runners import kubernetes as k8s

        partial_kwargs, make_config = k8s.kpo_partial_kwargs, k8s.config_from_airflow
    except (ImportError, AttributeError) as exc:
        raise RunnerError(
            "[pach_airflow] runner = kubernetes needs pach_airflow.runners.kubernetes with "
            f"kpo_partial_kwargs(spec, config), kpo_expand_kwargs(...) and config_from_airflow(): {exc}"
        ) from exc
    return dict(partial_kwargs(spec, make_config()))


def _kubernetes_process(spec: PipelineSpec, planned, parallelism: int, kwargs: dict[str, Any]):
    """``process`` as plain KubernetesPodOperators, mapped over per-set kwargs (the kubernetes runner)."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk import task

    from pach_airflow.runners import kubernetes as k8s

    expand_kwargs, make_config = k8s.kpo_expand_kwargs, k8s.config_from_airflow
    name = spec.pipeline.name

    @task(task_id="pod_args")
    def pod_args(sets: list[dict]) -> list[dict]:
        from airflow.sdk import get_current_context

        job_id = get_current_context()["ti"].xcom_pull(task_ids="plan", key="job_id")
        cfg = make_config()
        out = []
        for s in sets:
            kw = expand_kwargs(name, job_id, s["set_id"], cfg)
            # The set's label rides along as an annotation: map_index_template shows it in the UI.
            kw["annotations"] = {**(kw.get("annotations") or {}), SET_LABEL_ANNOTATION: s["label"]}
            out.append(kw)
        return out

    kwargs = dict(kwargs)
    kwargs.setdefault("max_active_tis_per_dagrun", parallelism)
    kwargs.setdefault("retries", 1)
    kwargs.setdefault("map_index_template", "{{ task.annotations['" + SET_LABEL_ANNOTATION + "'] }}")
    return KubernetesPodOperator.partial(task_id="process", **kwargs).expand_kwargs(
        pod_args(planned))


# -- run time: plan -----------------------------------------------------------------------------------

def _get(obj: Any, key: str, default: Any = None) -> Any:
    """A field of a record that may be a dict or an object (jobs' PlannedJob/JobInfo)."""
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def validate_run_conf(spec: PipelineSpec, conf: Mapping[str, Any] | None) -> dict[str, str]:
    """The run's ``{"commits": {repo: id}}`` checked against the spec (the store check is in plan)."""
    from pach_airflow.errors import JobError
    from pach_airflow.pfs.paths import is_commit_id

    conf = dict(conf or {})
    name = spec.pipeline.name
    unknown = sorted(set(conf) - set(CONF_KEYS))
    if unknown:
        raise JobError(f"pipeline {name}: run conf: unknown key(s) {', '.join(map(repr, unknown))}; "
                       'the conf takes {"commits": {"<repo>": "<commit id>"}}')
    commits = conf.get("commits") or {}
    if not isinstance(commits, Mapping):
        raise JobError(f'pipeline {name}: run conf: "commits" must map input repos to commit ids, '
                       f'e.g. {{"commits": {{"images": "<commit id>"}}}}; got {commits!r}')
    repos = {i.repo for i in input_branches(spec)}
    pins: dict[str, str] = {}
    for repo, commit in commits.items():
        if repo not in repos:
            raise JobError(f"pipeline {name}: run conf: commits: {repo!r} is not an input repo of this "
                           f"pipeline (inputs: {', '.join(sorted(repos)) or 'none'})")
        if not isinstance(commit, str) or not is_commit_id(commit):
            raise JobError(f"pipeline {name}: run conf: commits.{repo}: {commit!r} is not a commit id "
                           "(32 hex characters, as `pach-airflow list commit` prints)")
        pins[repo] = commit
    return pins


def _job_pins(job: Any) -> dict[str, str]:
    """repo → commit id that a job record pinned (``input_commits`` as a list of dicts or a mapping)."""
    raw = _get(job, "input_commits") or {}
    if isinstance(raw, Mapping):
        return {k: (v if isinstance(v, str) else _get(v, "id")) for k, v in raw.items()}
    return {_get(c, "repo"): _get(c, "id") for c in raw if _get(c, "repo")}


FRONTIER_JOBS = 100  # how many recent jobs say which input commits are done


def processed_frontier(store, pipeline: str) -> dict[str, str] | None:
    """repo → the newest input commit any recent job of the pipeline pinned (``None``: no job yet).

    The newest over several jobs, not the last job's pins: a run pinned by hand to an old commit must
    not make the commits after it look new again.
    """
    from pach_airflow import jobs

    found = jobs.list_jobs(store, pipeline)
    if not found:
        return None
    frontier: dict[str, str] = {}
    for job in found[:FRONTIER_JOBS]:
        for repo, commit in _job_pins(job).items():
            if commit and commit > frontier.get(repo, ""):
                frontier[repo] = commit
    return frontier


def _finished_commits_after(store, repo: str, branch: str, after: str | None) -> list[str]:
    """Finished commit ids of repo@branch newer than ``after`` (all of them if None), oldest first."""
    from pach_airflow.errors import NotFound

    out = []
    try:
        for info in store.list_commits(repo, branch):
            if after is not None and info.id <= after:
                break
            if info.finished:
                out.append(info.id)
    except NotFound:
        return []
    return out[::-1]


def _commit_at(store, repo: str, branch: str, moment: str) -> str | None:
    """The newest finished commit of repo@branch with an id not after ``moment`` (ids sort by time)."""
    from pach_airflow.errors import NotFound

    try:
        for info in store.list_commits(repo, branch):
            if info.id <= moment and info.finished:
                return info.id
    except NotFound:
        return None
    return None


def pending_commits(store, spec: PipelineSpec, frontier: Mapping[str, str] | None = None
                    ) -> list[tuple[str, RepoInput]]:
    """Input commits with no job yet, oldest first: ``[(commit id, input)]``.

    After a previous job: the commits of each input branch after the newest one a job pinned. Before
    the first job: none -- the first job runs on the heads (``plan`` handles it), as in Pachyderm.
    """
    pins = frontier if frontier is not None else processed_frontier(store, spec.pipeline.name)
    if pins is None:
        return []
    pending: list[tuple[str, RepoInput]] = []
    for inp in input_branches(spec):
        for commit in _finished_commits_after(store, inp.repo, inp.branch, pins.get(inp.repo)):
            pending.append((commit, inp))
    pending.sort(key=lambda p: p[0])
    return pending


def pins_for(store, spec: PipelineSpec, commit: str, inp: RepoInput, previous: Mapping[str, str]) -> dict[str, str]:
    """The pins of the job for ``commit`` on ``inp``: the other inputs as they were at that moment."""
    pins = {inp.repo: commit}
    for other in input_branches(spec):
        if other.repo in pins:
            continue
        at = _commit_at(store, other.repo, other.branch, commit)
        if at is None:
            at = previous.get(other.repo)
        if at is not None:
            pins[other.repo] = at
    return pins


def _cron_start(store, spec: PipelineSpec, cron: Any) -> dt.datetime:
    start = getattr(cron, "start", None)
    if isinstance(start, str):
        start = dt.datetime.fromisoformat(start)
    if start is None:
        try:
            record = store.get_record(f"pps/pipelines/{spec.pipeline.name}")
            start = dt.datetime.fromisoformat(str(record.get("created")))
        except Exception:  # noqa: BLE001 -- no record (yet): ticks start now
            start = dt.datetime.now(dt.UTC)
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    return start


TICK_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_TICKS_PER_RUN = 1000


def tick_crons(store, spec: PipelineSpec, now: dt.datetime | None = None, *, run_cron: bool = False) -> list[str]:
    """Write every due tick of every cron input, one commit each (reference §7); return the commit ids.

    Resumes from the newest tick file in the cron repo (else the input's ``start``, else the pipeline's
    creation), commits each ``next()`` tick up to ``now``; ``overwrite`` deletes the previous tick
    files in the same commit, so the repo holds exactly one. ``run_cron`` (``pachctl run cron``) adds a
    tick at ``now`` to every cron input, due or not.
    """
    from pach_airflow.errors import AlreadyExists, NotFound
    from pach_airflow.spec import parse_cron

    now = now or dt.datetime.now(dt.UTC)
    written: list[str] = []
    for inp in input_branches(spec):
        cron = inp.cron
        if cron is None or cron.spec.strip() == "@never":
            continue
        try:
            store.create_repo(inp.repo, description=f"cron ticks of pipeline {spec.pipeline.name}")
        except AlreadyExists:
            pass
        try:
            existing = [f.path for f in store.list_file(inp.repo, "master", "/") if f.type == "file"]
        except NotFound:
            existing = []
        last = None
        for path in existing:
            try:
                t = dt.datetime.strptime(path.rsplit("/", 1)[-1], TICK_FORMAT).replace(tzinfo=dt.UTC)
            except ValueError:
                continue
            last = t if last is None or t > last else last
        start = _cron_start(store, spec, cron)
        cursor = max(last, start) if last else start
        schedule = parse_cron(cron.spec)
        ticks: list[dt.datetime] = []
        nxt = schedule.next(cursor)
        while nxt is not None and nxt <= now and len(ticks) < MAX_TICKS_PER_RUN:
            ticks.append(nxt)
            nxt = schedule.next(nxt)
        tick_now = now.replace(microsecond=0)
        if run_cron and tick_now not in ticks and (last is None or last < tick_now):
            ticks.append(tick_now)
        for tick in ticks:
            with store.open_commit(inp.repo, "master", origin="USER", description=f"cron tick {cron.name}") as c:
                if getattr(cron, "overwrite", False):
                    for path in existing:
                        c.delete_file(path)
                name = "/" + tick.astimezone(dt.UTC).strftime(TICK_FORMAT)
                c.put_file(name, b"")
                existing = [name]
            written.append(c.commit_id)
    return written


def _plan_job(store, spec: PipelineSpec, pins: dict[str, str] | None):
    from pach_airflow import airflow_config, jobs

    kwargs: dict[str, Any] = {"commits": pins or None}
    if "cap" in inspect.signature(jobs.plan_job).parameters:
        kwargs["cap"] = airflow_config.max_sets()
    return jobs.plan_job(store, spec, **kwargs)


def set_label(datums: list[Mapping[str, Any]]) -> str:
    """A short label for a datum set: its first datum's input files, and how many datums follow."""
    if not datums:
        return "empty"
    first = datums[0]
    parts = [f"{_get(i, 'name')}:{_get(i, 'path')}" for i in (_get(first, "inputs") or ())]
    label = ", ".join(parts) or str(_get(first, "id", ""))[:12]
    if len(label) > LABEL_LIMIT:
        label = label[: LABEL_LIMIT - 1] + "…"
    if len(datums) > 1:
        label += f" (+{len(datums) - 1})"
    return label


def set_labels(store, pipeline: str, job_id: str, set_ids: list[str]) -> list[dict]:
    """``[{"set_id", "label"}]`` read from the set records plan_job wrote (threads: S3 round trips)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(set_id: str) -> dict:
        try:
            record = store.get_record(f"pps/jobs/{pipeline}/{job_id}/sets/{set_id}")
            label = set_label(record.get("datums") or [])
        except Exception:  # noqa: BLE001 -- a label is cosmetic: never fail the plan for it
            label = f"set {set_id}"
        return {"set_id": str(set_id), "label": label}

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, set_ids))


def _check_pins_exist(store, spec: PipelineSpec, pins: Mapping[str, str]) -> None:
    from pach_airflow.errors import JobError, NotFound

    for repo, commit in pins.items():
        try:
            store.inspect_commit(repo, commit)
        except NotFound as exc:
            raise JobError(f"pipeline {spec.pipeline.name}: run conf: commits.{repo}: no commit {commit} "
                           f"in repo {repo} ({exc})") from exc


def _tick_pending(store, spec: PipelineSpec, ticks: list[str]) -> list[tuple[str, RepoInput]]:
    """The tick commits just written, as pending input commits (oldest first)."""
    wanted = set(ticks)
    out = []
    for inp in input_branches(spec):
        if inp.cron is not None:
            out += [(c, inp) for c in _finished_commits_after(store, inp.repo, inp.branch, None) if c in wanted]
    return sorted(out, key=lambda p: p[0])


def _repo_exists(store: Any, repo: str) -> bool:
    from pach_airflow.errors import NotFound

    try:
        store.inspect_repo(repo)
    except NotFound:
        return False
    return True


def run_plan(spec: PipelineSpec, context: Mapping[str, Any], *,
             upstream: set[tuple[str, str]] | frozenset = frozenset()) -> dict:
    """The ``plan`` task: tick crons, pick the input commits, plan the job, return set ids and labels.

    ``upstream``: the (repo, branch) pairs other pipelines write. Such an input whose repo does not
    exist yet is an upstream pipeline that has not made its first output commit (specs land in
    ``dags/`` in any order): the run does nothing and says so, and the upstream's first output
    commit starts this pipeline again through its Asset.
    """
    from pach_airflow import airflow_config, jobs

    dag_run = context.get("dag_run")
    conf = dict(getattr(dag_run, "conf", None) or {})
    pins = validate_run_conf(spec, conf)   # bad conf fails here, before anything is written
    run_type = getattr(dag_run, "run_type", None)
    run_type = str(getattr(run_type, "value", run_type) or "").lower()
    store = airflow_config.open_store()
    waiting = [repo for repo, branch in sorted(upstream & {(i.repo, i.branch) for i in input_branches(spec)})
               if not _repo_exists(store, repo)]
    if waiting:
        log.info("waiting for the first output commit of upstream pipeline(s) %s: nothing to do yet; their "
                 "first output starts this pipeline", ", ".join(waiting))
        return {"job_id": None, "sets": [], "backlog": 0, "commits": {}}
    if pins:
        _check_pins_exist(store, spec, pins)
    jobs.ensure_pipeline(store, spec)
    ticks = tick_crons(store, spec, run_cron=bool(conf.get("run_cron")))
    if ticks:
        log.info("wrote %d cron tick commit(s): %s", len(ticks), ", ".join(ticks))

    backlog = 0
    by_hand = run_type == "manual" and not conf.get("drain") and not conf.get("run_cron")
    if not pins and not by_hand:
        frontier = processed_frontier(store, spec.pipeline.name)
        pending = pending_commits(store, spec, frontier)
        if not pending and ticks and frontier is None:
            # A cron pipeline's first run: every tick it just wrote still gets its own job.
            pending = _tick_pending(store, spec, ticks)
        if pending:
            commit, inp = pending[0]
            pins = pins_for(store, spec, commit, inp, frontier or {})
            backlog = len(pending) - 1
            log.info("input commit %s@%s=%s gets this job; %d more wait", inp.repo, inp.branch, commit, backlog)
        elif frontier is not None:
            log.info("every input commit has its job already: nothing to do")
            return {"job_id": None, "sets": [], "backlog": 0, "commits": {}}
        # else: the pipeline's first job runs on the input heads.
    planned = _plan_job(store, spec, pins)
    job_id = str(_get(planned, "job_id"))
    set_ids = [str(s) for s in (_get(planned, "set_ids") or [])]
    sets = set_labels(store, spec.pipeline.name, job_id, set_ids)
    log.info("job %s: %d datum set(s), pins %s", job_id, len(sets), json.dumps(pins or "heads"))
    return {"job_id": job_id, "sets": sets, "backlog": backlog, "commits": pins or {}}


# -- run time: process, finish ------------------------------------------------------------------------

def _failed_count(result: Any) -> int:
    for key in ("FAILED", "failed", "data_failed"):
        value = _get(result, key)
        if isinstance(value, int):
            return value
        if isinstance(value, (list, tuple)):
            return len(value)
    datums = _get(result, "datums")
    if isinstance(datums, list):
        return sum(1 for d in datums if _get(d, "state") == "FAILED")
    return 0


def run_process(spec: PipelineSpec, context: Any, item: Mapping[str, Any]) -> dict:
    """One ``process`` task: run one datum set on the local runner."""
    from airflow.sdk.exceptions import AirflowFailException

    from pach_airflow import airflow_config, jobs

    job_id = context["ti"].xcom_pull(task_ids="plan", key="job_id")
    context["pach_set_label"] = item.get("label") or f"set {item['set_id']}"
    store = airflow_config.open_store()
    result = jobs.process_set(store, spec.pipeline.name, job_id, str(item["set_id"]), runner="local")
    summary = result if isinstance(result, dict) else {"result": str(result)}
    failed = _failed_count(result)
    if failed:
        # datum_tries were spent inside the shim: an Airflow retry would only repeat them.
        raise AirflowFailException(f"set {item['set_id']} of job {job_id}: {failed} datum(s) failed; "
                                   f"see `pach-airflow list datum {spec.pipeline.name}@{job_id}` and "
                                   f"`pach-airflow logs -p {spec.pipeline.name} -j {job_id}`")
    return summary


def run_finish(spec: PipelineSpec, context: Any, out_asset: Any) -> dict:
    """The ``finish`` task: assemble the output commit, record the job, emit the output Asset event."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from pach_airflow import airflow_config, jobs

    ti = context["ti"]
    job_id = ti.xcom_pull(task_ids="plan", key="job_id")
    if not job_id:
        raise AirflowSkipException("no job in this run (plan failed or every input commit has its job)")
    store = airflow_config.open_store()
    info = jobs.finish_job(store, spec.pipeline.name, job_id)
    state = str(_get(info, "state"))
    summary = {k: _get(info, k) for k in ("state", "reason", "data_processed", "data_skipped", "data_failed",
                                         "data_recovered", "data_total")}
    summary.update(job_id=job_id, output_commit=job_id, pipeline=spec.pipeline.name)
    log.info("job %s: %s", job_id, json.dumps(summary, default=str))
    if state != "JOB_SUCCESS":
        raise AirflowFailException(f"job {spec.pipeline.name}@{job_id} ended {state}: "
                                   f"{_get(info, 'reason') or 'no reason recorded'}")
    repo, branch = output_branch(spec)
    context["outlet_events"][out_asset].extra = {"repo": repo, "branch": branch, "commit": job_id}
    return summary
