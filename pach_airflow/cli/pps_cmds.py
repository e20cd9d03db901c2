"""``pach-airflow`` commands for pipelines and jobs (pachctl's pps verbs).

``run pipeline`` runs one job here and now with the local runner; ``create/update/delete pipeline``
write the pipeline record and, when a dags folder is configured (``--dags-folder``, else
``$PACH_AIRFLOW_DAGS_FOLDER``, else ``$AIRFLOW__CORE__DAGS_FOLDER``), install or remove the spec file
there for Airflow. ``stop/start pipeline`` pause and resume. ``list/inspect job`` and ``logs`` read the
job records. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC
from typing import Any

from pach_airflow.cli import OUTPUT_ARG, arg, command
from pach_airflow.cli.output import ago, emit, human_size

SPEC_ARG = arg("-f", "--file", required=True, help="pipeline spec file (JSON or YAML; '-' reads stdin)")
DAGS_ARG = arg("--dags-folder", default=None,
               help="Airflow dags folder to install the spec into (default: $PACH_AIRFLOW_DAGS_FOLDER, "
                    "else $AIRFLOW__CORE__DAGS_FOLDER; none: the store only)")


def _store():
    from pach_airflow.pfs import open_store

    return open_store()


def _load(path: str) -> tuple[list, str | None]:
    """Specs of a file or stdin; returns (specs, text when read from stdin)."""
    from pach_airflow.spec import load_specs, parse_specs

    if path == "-":
        text = sys.stdin.read()
        return parse_specs(text, source="<stdin>"), text
    return load_specs(path), None


def _dags_folder(ns: argparse.Namespace) -> str | None:
    return (getattr(ns, "dags_folder", None) or os.environ.get("PACH_AIRFLOW_DAGS_FOLDER")
            or os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or None)


def _loader_call(fn_name: str, *args: Any) -> None:
    """Call ``pach_airflow.loader.<fn_name>`` if it exists; a note on stderr when it does not."""
    try:
        from pach_airflow import loader
    except ImportError:
        print(f"pach-airflow: note: pach_airflow.loader is not available; skipped {fn_name}", file=sys.stderr)
        return
    fn = getattr(loader, fn_name, None)
    if fn is None:
        print(f"pach-airflow: note: pach_airflow.loader.{fn_name} is not available; skipped", file=sys.stderr)
        return
    fn(*args)


def _install(ns: argparse.Namespace, specs: list, stdin_text: str | None) -> None:
    """Put the (already validated) spec file into the dags folder, when one is configured: the
    loader keeps the user's own text for a one-pipeline file and splits a several-pipeline file."""
    folder = _dags_folder(ns)
    if not folder or not specs:
        return
    _loader_call("install_spec", stdin_text if stdin_text is not None else os.path.abspath(ns.file), folder)


@command("create", "pipeline", help="create a pipeline from a spec file (and install it for Airflow)",
         args=[SPEC_ARG, DAGS_ARG])
def create_pipeline(ns: argparse.Namespace) -> int:
    from pach_airflow import jobs
    from pach_airflow.errors import AlreadyExists

    specs, text = _load(ns.file)
    store = _store()
    for spec in specs:
        name = spec.pipeline.name
        if name in {p.name for p in jobs.list_pipelines(store)}:
            raise AlreadyExists(f"pipeline {name} exists already; change it with: "
                                f"pach-airflow update pipeline -f {ns.file}")
    for spec in specs:
        jobs.ensure_pipeline(store, spec)
    _install(ns, specs, text)
    return 0


@command("update", "pipeline", help="update a pipeline (old datums are not rerun unless --reprocess)",
         args=[SPEC_ARG, DAGS_ARG,
               arg("--reprocess", action="store_true", help="rerun every datum: a new salt")])
def update_pipeline(ns: argparse.Namespace) -> int:
    from pach_airflow import jobs

    specs, text = _load(ns.file)
    store = _store()
    for spec in specs:
        jobs.ensure_pipeline(store, spec, reprocess=ns.reprocess)
    _install(ns, specs, text)
    return 0


@command("run", "pipeline",
         help="create or update a pipeline and run one job now on this machine; prints the job id, "
              "exits 0 only on JOB_SUCCESS",
         args=[arg("name", nargs="?", default=None, help="an existing pipeline (instead of -f)"),
               arg("-f", "--file", default=None, help="pipeline spec file (JSON or YAML; '-' reads stdin)"),
               arg("--reprocess", action="store_true", help="rerun every datum: a new salt"),
               arg("-c", "--commit", action="append", default=[], metavar="REPO@ID",
                   help="pin an input to a commit (repeatable); default: the branch heads")])
def run_pipeline(ns: argparse.Namespace) -> int:
    from pach_airflow import jobs
    from pach_airflow.errors import JobError

    if bool(ns.file) == bool(ns.name):
        raise JobError("run pipeline: give either a spec file (-f SPEC) or the name of an existing pipeline")
    store = _store()
    if ns.file:
        specs, _ = _load(ns.file)
    else:
        specs = [jobs.inspect_pipeline(store, ns.name).spec]
    commits: dict[str, str] = {}
    for c in ns.commit:
        repo, sep, cid = c.partition("@")
        if not sep or not repo or not cid:
            raise JobError(f"--commit {c!r}: write it as REPO@COMMIT_ID")
        commits[repo] = cid
    code = 0
    for spec in specs:
        info = jobs.run_job(store, spec, commits=commits or None, reprocess=ns.reprocess)
        print(info.id, flush=True)
        if info.state != jobs.JOB_SUCCESS:
            code = 1
            print(f"pach-airflow: job {info.pipeline}@{info.id} {info.state}: {info.reason}", file=sys.stderr)
    return code


@command("list", "pipeline", help="list pipelines", args=[OUTPUT_ARG])
def list_pipeline(ns: argparse.Namespace) -> int:
    from pach_airflow import jobs

    rows = []
    for p in jobs.list_pipelines(_store()):
        inputs = sorted({f"{repo}:{b}" for _k, _n, repo, b in jobs.input_branches(p.spec)})
        rows.append({"name": p.name, "version": p.version, "input": inputs, "created": p.created,
                     "state": p.state, "last_job": p.last_job, "last_job_state": p.last_job_state,
                     "description": p.spec.get("description", "")} if ns.output == "json" else
                    {"name": p.name, "version": p.version, "input": ",".join(inputs), "created": ago(p.created),
                     "state": f"{p.state.lower()} / {(p.last_job_state or '-').replace('JOB_', '').lower()}",
                     "description": p.spec.get("description") or ""})
    emit(rows, [("name", "name"), ("version", "version"), ("input", "input"), ("created", "created"),
                ("state", "state / last job"), ("description", "description")], ns.output)
    return 0


@command("inspect", "pipeline", help="show a pipeline: spec, state, salt, last job",
         args=[arg("name"), arg("-o", "--output", choices=("text", "json"), default="text")])
def inspect_pipeline(ns: argparse.Namespace) -> int:
    from pach_airflow import jobs

    p = jobs.inspect_pipeline(_store(), ns.name)
    if ns.output == "json":
        print(json.dumps(p.to_dict()))
        return 0
    print(f"Name: {p.name}\nVersion: {p.version}\nState: {p.state}\nCreated: {p.created}\nUpdated: {p.updated}")
    print(f"Last Job: {p.last_job or '-'} {p.last_job_state or ''}".rstrip())
    print("Spec:")
    print(json.dumps(p.spec, indent=2))
    return 0


@command("delete", "pipeline", help="delete a pipeline, its jobs and (unless --keep-repo) its output repo",
         args=[arg("name"), DAGS_ARG, arg("--keep-repo", action="store_true", help="keep the output repo"),
               arg("--force", action="store_true", help="delete even if other pipelines read its output")])
def delete_pipeline(ns: argparse.Namespace) -> int:
    from pach_airflow import jobs

    jobs.delete_pipeline(_store(), ns.name, keep_repo=ns.keep_repo, force=ns.force)
    folder = _dags_folder(ns)
    if folder:
        from pach_airflow.errors import NotFound

        try:
            _loader_call("remove_spec", ns.name, folder)
        except NotFound as exc:  # created without a dags folder: nothing to take out
            print(f"pach-airflow: note: {exc}", file=sys.stderr)
    return 0


def _pause(ns: argparse.Namespace, paused: bool) -> int:
    from pach_airflow import jobs

    jobs.set_pipeline_state(_store(), ns.name, jobs.PIPELINE_PAUSED if paused else jobs.PIPELINE_RUNNING)
    if _dags_folder(ns):
        try:
            _loader_call("set_paused", ns.name, paused)
        except Exception as exc:  # noqa: BLE001 - the store record is what runs obey; Airflow may be down
            print(f"pach-airflow: note: the Airflow DAG was not {'paused' if paused else 'unpaused'}: {exc}",
                  file=sys.stderr)
    return 0


@command("stop", "pipeline", help="pause a pipeline: no job runs until it is started",
         args=[arg("name"), DAGS_ARG])
def stop_pipeline(ns: argparse.Namespace) -> int:
    return _pause(ns, True)


@command("start", "pipeline", help="resume a stopped pipeline", args=[arg("name"), DAGS_ARG])
def start_pipeline(ns: argparse.Namespace) -> int:
    return _pause(ns, False)


def _duration(job) -> str:
    from pach_airflow.jobs import parse_time

    start, end = parse_time(job.started), parse_time(job.finished)
    if start is None:
        return "-"
    if end is None:
        from datetime import datetime

        end = datetime.now(UTC)
    secs = (end - start).total_seconds()
    if secs < 60:
        return f"{secs:.1f}s" if secs < 10 else f"{int(secs)}s"
    if secs < 3600:
        return f"{int(secs // 60)}m{int(secs % 60)}s"
    return f"{int(secs // 3600)}h{int(secs % 3600 // 60)}m"


def _job_row(job) -> dict:
    return {"id": job.id, "pipeline": job.pipeline, "state": job.state, "started": job.started,
            "finished": job.finished, "reason": job.reason, "data_processed": job.data_processed,
            "data_skipped": job.data_skipped, "data_failed": job.data_failed,
            "data_recovered": job.data_recovered, "data_total": job.data_total,
            "input_commits": job.input_commits, "output_commit": job.output_commit,
            "restart": job.record.get("restart", 0), "download_bytes": job.record.get("download_bytes", 0),
            "upload_bytes": job.record.get("upload_bytes", 0), "egress": job.record.get("egress")}


def _parse_job_ref(ref: str) -> tuple[str, str]:
    from pach_airflow.errors import JobError

    pipeline, sep, job_id = ref.partition("@")
    if not sep or not pipeline or not job_id:
        raise JobError(f"job {ref!r}: write it as PIPELINE@JOB_ID")
    return pipeline, job_id


@command("list", "job", help="list jobs, newest first",
         args=[arg("-p", "--pipeline", default=None, help="only this pipeline's jobs"), OUTPUT_ARG])
def list_job(ns: argparse.Namespace) -> int:
    from pach_airflow import jobs

    store = _store()
    if ns.pipeline:
        jobs.inspect_pipeline(store, ns.pipeline)
    found = jobs.list_jobs(store, ns.pipeline)
    if ns.output == "json":
        emit((_job_row(j) for j in found), [], "json")
        return 0
    rows = []
    for j in found:
        progress = f"{j.data_processed} + {j.data_skipped} / {j.data_total}"
        if j.data_failed:
            progress += f" ({j.data_failed} failed)"
        rows.append({"pipeline": j.pipeline, "id": j.id, "started": ago(j.started), "duration": _duration(j),
                     "restart": j.record.get("restart", 0), "progress": progress,
                     "dl": human_size(j.record.get("download_bytes", 0)),
                     "ul": human_size(j.record.get("upload_bytes", 0)),
                     "state": j.state.removeprefix("JOB_").lower()})
    emit(rows, [("pipeline", "pipeline"), ("id", "id"), ("started", "started"), ("duration", "duration"),
                ("restart", "restart"), ("progress", "progress"), ("dl", "dl"), ("ul", "ul"),
                ("state", "state")], "table")
    return 0


@command("inspect", "job", help="show one job: state, counters, commits, reason",
         args=[arg("job", metavar="PIPELINE@ID"), arg("-o", "--output", choices=("text", "json"), default="text")])
def inspect_job(ns: argparse.Namespace) -> int:
    from pach_airflow import jobs

    pipeline, job_id = _parse_job_ref(ns.job)
    job = jobs.inspect_job(_store(), pipeline, job_id)
    row = _job_row(job)
    if ns.output == "json":
        print(json.dumps(row, default=str))
        return 0
    print(f"ID: {job.id}\nPipeline: {job.pipeline}\nState: {job.state}")
    if job.reason:
        print(f"Reason: {job.reason}")
    print(f"Started: {job.started or '-'}\nFinished: {job.finished or '-'}\nDuration: {_duration(job)}")
    print(f"Datums: processed {job.data_processed}, skipped {job.data_skipped}, failed {job.data_failed}, "
          f"recovered {job.data_recovered}, total {job.data_total}")
    print(f"Data Downloaded: {human_size(row['download_bytes'])}\nData Uploaded: {human_size(row['upload_bytes'])}")
    for c in job.input_commits:
        print(f"Input: {c['repo']}@{c['branch']}={c['id']}")
    if job.output_commit:
        oc = job.output_commit
        print(f"Output Commit: {oc['repo']}@{oc['branch']}={oc['id']}")
    if row["egress"]:
        e = row["egress"]
        print(f"Egress: {e['state']} {e['url']} ({e['files']} files, {human_size(e['bytes'])})"
              + (f": {e['error']}" if e.get("error") else ""))
    return 0


@command("stop", "job", help="stop a running job: it ends JOB_KILLED and its output branch stays as it is",
         args=[arg("job", metavar="PIPELINE@ID")])
def stop_job(ns: argparse.Namespace) -> int:
    from pach_airflow import jobs

    pipeline, job_id = _parse_job_ref(ns.job)
    jobs.stop_job(_store(), pipeline, job_id)
    return 0


@command("logs", None, help="print the user code's logs of a pipeline's job (default: its newest job)",
         args=[arg("-p", "--pipeline", required=True),
               arg("-j", "--job", default=None, help="job id (or PIPELINE@ID)"),
               arg("--datum", default=None, help="only this datum (id or id prefix)"),
               arg("-o", "--output", choices=("text", "json"), default="text")])
def logs(ns: argparse.Namespace) -> int:
    from pach_airflow import jobs

    job_id = ns.job
    if job_id and "@" in job_id:
        _, job_id = _parse_job_ref(job_id)
    store = _store()
    jobs.inspect_pipeline(store, ns.pipeline)
    for entry in jobs.job_logs(store, ns.pipeline, job_id, datum_id=ns.datum):
        if ns.output == "json":
            print(json.dumps(entry))
            continue
        for line in entry["log"].splitlines():
            print(line)
    return 0
