"""``pach-airflow`` commands for datums and globs: ``list datum``, ``inspect datum``, ``glob file``.

``list datum -f SPEC`` is pachctl's dry run: the datums SPEC would produce against the current branch
heads, creating nothing. ``list datum PIPELINE@JOB`` and ``inspect datum`` read a job's datum records
(``pach_airflow.jobs``). ``glob file "repo@branch:PATTERN"`` prints the matches of one glob, which are
the datums of a lone pfs input with that glob. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from pach_airflow.cli import OUTPUT_ARG, arg, command
from pach_airflow.cli.output import emit, human_size


def _store() -> Any:
    from pach_airflow.pfs import open_store

    return open_store()


_S3_REFUSED = "s3 is not supported by pach_airflow"


def _load_specs(path: str) -> list[Any]:
    """The specs of a file (or stdin). A spec refused only because pach_airflow cannot run its s3
    inputs yet is still listed, the way Pachyderm would cut it (one datum input at ``/`` per s3
    input), with a note: a dry run answers "which datums", not "can this run here"."""
    from pach_airflow.errors import SpecError
    from pach_airflow.spec import load_specs, parse_specs

    text = sys.stdin.read() if path == "-" else None
    source = "<stdin>" if path == "-" else path
    try:
        return parse_specs(text, source=source) if text is not None else load_specs(path)
    except SpecError as exc:
        if not exc.problems or not all(_S3_REFUSED in p for p in exc.problems):
            raise
    if text is None:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    print(f"pach-airflow: note: {source}: pach_airflow cannot run s3 inputs yet; listing the datums "
          "Pachyderm would make", file=sys.stderr)
    return _specs_with_s3(text, source)


def _specs_with_s3(text: str, source: str) -> list[Any]:
    """Validate the specs with their s3 flags taken out, then put the flags back on the normalised
    specs (as dicts, which the datum code reads like models). s3 inputs sit only under cross or at
    the top, where input names are unique, so the name finds the input again."""
    import yaml

    from pach_airflow.spec import dump_spec, spec_from_dict

    docs: list[Any] = []
    for doc in yaml.safe_load_all(text):
        docs.extend(doc if isinstance(doc, list) else [doc])
    out = []
    for doc in docs:
        names: set[str] = set()
        _strip_s3(doc.get("input") if isinstance(doc, dict) else None, names)
        spec = dump_spec(spec_from_dict(doc, source))
        _mark_s3(spec.get("input"), names)
        out.append(spec)
    return out


def _strip_s3(node: Any, names: set[str]) -> None:
    if not isinstance(node, dict):
        return
    pfs = node.get("pfs")
    if isinstance(pfs, dict) and pfs.pop("s3", False):
        names.add(pfs.get("name") or pfs.get("repo") or "")
    for kind in ("cross", "union", "join", "group"):
        for child in node.get(kind) or []:
            _strip_s3(child, names)


def _mark_s3(node: Any, names: set[str]) -> None:
    if not isinstance(node, dict):
        return
    pfs = node.get("pfs")
    if isinstance(pfs, dict) and pfs.get("name") in names:
        pfs["s3"] = True
    for kind in ("cross", "union", "join", "group"):
        for child in node.get(kind) or []:
            _mark_s3(child, names)


def _pin_heads(store: Any, spec: Any) -> dict[tuple[str, str], str | None]:
    """Each input's (repo, branch) → its branch head now (None: no commit yet). A missing repo of a
    pfs input is an error; a cron input's repo may not exist before its pipeline does."""
    from pach_airflow.datum import input_leaves, pipeline_name, spec_input
    from pach_airflow.errors import DatumError, NotFound

    pipeline = pipeline_name(spec)
    pinned: dict[tuple[str, str], str | None] = {}
    for leaf in input_leaves(spec_input(spec), pipeline):
        key = (leaf.repo, leaf.branch)
        if key in pinned:
            continue
        try:
            store.inspect_repo(leaf.repo)
        except NotFound:
            if leaf.cron:
                pinned[key] = None
                continue
            raise DatumError(f"pipeline {pipeline or '?'}: input {leaf.name}: repo {leaf.repo} not found; "
                             f"create it with: pach-airflow create repo {leaf.repo}") from None
        try:
            pinned[key] = store.inspect_branch(leaf.repo, leaf.branch).head
        except NotFound:
            pinned[key] = None
    return pinned


def dry_run_datums(store: Any, spec: Any) -> list[Any]:
    """The datums ``spec`` would produce against the current branch heads, sorted by id."""
    from pach_airflow.datum import iter_datums

    pinned = _pin_heads(store, spec)
    # The salt changes hashes, not ids; a dry run has no pipeline salt yet.
    return sorted(iter_datums(store, spec, pinned, ""), key=lambda d: d.id)


def _files(datum: Any) -> list[dict[str, Any]]:
    return [{"input": i.name, "repo": i.repo, "branch": i.branch, "path": i.path, "hash": i.hash}
            for i in datum.inputs]


def _file_refs(files: Iterable[dict[str, Any]]) -> list[str]:
    return [f"{f.get('repo')}@{f.get('branch')}:{f.get('path')}" for f in files]


def _parse_job_ref(text: str) -> tuple[str, str]:
    from pach_airflow.errors import JobError

    pipeline, at, job = text.partition("@")
    if not at or not pipeline or not job:
        raise JobError(f"{text!r}: give a job as PIPELINE@JOB_ID (see: pach-airflow list job)")
    return pipeline, job


def _jobs_fn(name: str) -> Any:
    from pach_airflow.errors import JobError

    try:
        from pach_airflow import jobs
    except ImportError as exc:
        raise JobError(f"job records are not available in this installation ({exc})") from exc
    fn = getattr(jobs, name, None)
    if fn is None:
        raise JobError(f"pach_airflow.jobs.{name} is not available in this installation")
    return fn


@command("list", "datum", help="list the datums of a job (PIPELINE@JOB), or those a spec would make (-f SPEC)",
         args=[arg("job", nargs="?", default=None, metavar="PIPELINE@JOB", help="a job, as pipeline@job-id"),
               arg("-f", "--file", default=None,
                   help="a pipeline spec (JSON or YAML, '-' for stdin): list the datums it would produce "
                        "now, creating nothing"),
               OUTPUT_ARG])
def list_datum(ns: argparse.Namespace) -> int:
    from pach_airflow.datum import pipeline_name
    from pach_airflow.errors import DatumError

    if (ns.job is None) == (ns.file is None):
        raise DatumError("give either PIPELINE@JOB or -f SPEC: pach-airflow list datum -f spec.yaml")
    store = _store()
    if ns.file is not None:
        specs = _load_specs(ns.file)
        many = len(specs) > 1
        rows: list[dict[str, Any]] = []
        for spec in specs:
            for d in dry_run_datums(store, spec):
                row: dict[str, Any] = {"id": d.id, "files": _files(d)}
                if many:
                    row["pipeline"] = pipeline_name(spec)
                rows.append(row)
        if ns.output == "json":
            emit(rows, [], "json")
        else:
            emit(({"id": r["id"], "files": _file_refs(r["files"]), "status": "-"} for r in rows),
                 [("id", "ID"), ("files", "FILES"), ("status", "STATUS")], "table")
        return 0
    pipeline, job_id = _parse_job_ref(ns.job)
    datums = _jobs_fn("list_job_datums")(store, pipeline, job_id)
    if ns.output == "json":
        emit(datums, [], "json")
    else:
        emit(_table_rows(datums), [("id", "ID"), ("files", "FILES"), ("state", "STATUS"), ("time", "TIME")],
             "table")
    return 0


def _table_rows(datums: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for d in datums:
        yield {"id": d.get("id"), "files": _file_refs(d.get("files") or []), "state": d.get("state"),
               "time": _duration(d.get("started"), d.get("finished"))}


def _duration(started: Any, finished: Any) -> str | None:
    from datetime import datetime

    if not started or not finished:
        return None
    try:
        secs = (datetime.fromisoformat(str(finished)) - datetime.fromisoformat(str(started))).total_seconds()
    except (TypeError, ValueError):
        return None
    return f"{secs:.1f}s"


@command("inspect", "datum", help="show one datum of a job: state, files, timing and log",
         args=[arg("job", metavar="PIPELINE@JOB", help="a job, as pipeline@job-id"),
               arg("datum", metavar="DATUM_ID", help="a datum id (or a unique prefix of one)"),
               OUTPUT_ARG])
def inspect_datum(ns: argparse.Namespace) -> int:
    pipeline, job_id = _parse_job_ref(ns.job)
    info = _jobs_fn("inspect_datum")(_store(), pipeline, job_id, ns.datum)
    if ns.output == "json":
        print(json.dumps(info, default=str))
        return 0
    for key in ("id", "state", "job", "hash", "reason", "started", "finished"):
        if info.get(key) is not None:
            print(f"{key.capitalize()}: {info[key]}")
    files = info.get("files") or []
    if files:
        print("Files:")
        for ref in _file_refs(files):
            print(f"  {ref}")
    if info.get("log"):
        print("Log:")
        print(info["log"].rstrip("\n"))
    return 0


@command("glob", "file", help="list the files and directories a glob matches: \"repo@branch:/pattern\"",
         args=[arg("pattern", metavar="REPO@BRANCH:PATTERN",
                   help="a glob over one commit, quoted: \"images@master:/*/*.png\""),
               OUTPUT_ARG])
def glob_file_cmd(ns: argparse.Namespace) -> int:
    from pach_airflow.glob import glob_file
    from pach_airflow.pfs.paths import parse_file_ref

    # Only repo@ref is a file reference; the pattern stays raw for glob_file to clean the way
    # Pachyderm's GlobFile does (pfsfile.CleanPath resolves '..', which a stored path may not hold).
    head, _, pattern = ns.pattern.partition(":")
    repo, ref, _ = parse_file_ref(head)
    matches = glob_file(_store(), repo, ref, pattern)
    if ns.output == "json":
        emit(({"path": m.path, "type": m.type, "size": m.size, "hash": m.hash} for m in matches), [], "json")
    else:
        emit(({"path": m.path, "type": m.type, "size": human_size(m.size)} for m in matches),
             [("path", "NAME"), ("type", "TYPE"), ("size", "SIZE")], "table")
    return 0
