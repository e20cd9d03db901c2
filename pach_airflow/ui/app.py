"""The FastAPI app of the UI: server-rendered pages and a JSON API over repos, commits, jobs and lineage.

``create_app()`` builds it; ``plugins/pach_airflow_ui.py`` mounts it in Airflow's API server under
``/pach``. Every route, pages, API and the stylesheet alike, depends on :func:`.auth.current_user`, so
nothing is served without an Airflow login. The store is opened from the URL in force at request time
(:func:`.data.resolve_store_url`).

Routes (relative to the mount prefix)::

    /                               repos, pipelines, lineage at a glance
    /repos/{repo}[?branch=]         branches and commits (size, origin, provenance, the job that made each)
    /commits/{repo}/{id}            one commit: provenance, subvenance, files, its job and DAG run
    /pipelines/{name}               spec, jobs, the lineage around it (also the DAG's "Pachyderm" tab)
    /jobs[?pipeline=]               jobs, newest first (pachctl list job)
    /jobs/{pipeline}/{id}           one job: counts, input commits, every datum with its state and log
    /runs/{dag_id}/{run_id}         the job a DAG run ran (the DAG run's "Output commit" tab)
    /runs/{dag_id}/{run_id}/tasks/{task}/{map_index}   a mapped task's datums (its "Datums" tab)
    /files/{repo}/{ref}/{path}      one file of a commit (images and text inline, the rest downloads)
    /lineage                        the whole graph, as inline SVG
    /api/...                        the same data as JSON (see the ``api_*`` routes)
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.concurrency import run_in_threadpool

from pach_airflow.errors import InvalidName, InvalidPath, NotFound, PachAirflowError
from pach_airflow.ui import auth, data, runs
from pach_airflow.ui import lineage as lin

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
DEFAULT_PREFIX = "/pach"
STATIC = {"pach.css": "text/css", "pach.js": "text/javascript", "icon.svg": "image/svg+xml"}


@functools.cache
def _templates() -> Any:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from pach_airflow.cli.output import ago, human_size

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["size"] = human_size
    env.filters["ago"] = _safe(ago)
    env.filters["short"] = lambda s: (s or "")[:12]
    env.filters["when"] = _when
    env.filters["secs"] = _secs
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=False, default=str)
    env.filters["q"] = lambda s: quote(str(s), safe="")
    env.filters["urlpath"] = lambda s: quote(str(s), safe="/")
    return env


def _safe(fn: Callable[[Any], str]) -> Callable[[Any], str]:
    def wrapped(v: Any) -> str:
        try:
            return fn(v)
        except (TypeError, ValueError):
            return str(v) if v is not None else "-"
    return wrapped


def _when(v: Any) -> str:
    if not v:
        return "-"
    try:
        return datetime.fromisoformat(str(v)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(v)


def _secs(v: float | None) -> str:
    if v is None:
        return "-"
    if v < 1:
        return f"{v * 1000:.0f} ms"
    if v < 120:
        return f"{v:.1f} s"
    return f"{int(v // 60)} min {int(v % 60)} s"


class Ui:
    """Per-app settings and the helpers the routes share."""

    def __init__(self, store_url: str | None, url_prefix: str, read_dags: bool):
        self.store_url = store_url
        self.url_prefix = url_prefix.rstrip("/")
        self.read_dags = read_dags

    def dag_specs(self) -> list[dict[str, Any]]:
        """Specs of the DAGs folder's pipelines, for those that have not run yet."""
        return data.dag_specs() if self.read_dags else []

    def store(self) -> Any:
        return data.get_store(data.resolve_store_url(self.store_url))

    def roots(self, request: Request) -> tuple[str, str]:
        """(this app's root path, Airflow's root path) as the browser sees them."""
        root = request.scope.get("root_path", "").rstrip("/")
        airflow_root = root[: -len(self.url_prefix)] if self.url_prefix and root.endswith(self.url_prefix) else ""
        return root, airflow_root

    def page(self, request: Request, template: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        root, airflow_root = self.roots(request)
        html = _templates().get_template(template).render(
            root=root, airflow=airflow_root, user=auth.user_name(request), request_path=request.url.path,
            runs=runs, **ctx,
        )
        return HTMLResponse(html, status_code=status_code)


def create_app(store_url: str | None = None, *, url_prefix: str = DEFAULT_PREFIX,
               read_dags: bool = True) -> FastAPI:
    """The UI app. ``store_url`` pins a store (tests); by default it is resolved at each request.
    ``url_prefix`` is where the plugin mounts it (links to Airflow's own pages are made relative to it).
    ``read_dags``: also show the pipelines of the dags folder's spec files that have not run yet."""
    ui = Ui(store_url, url_prefix, read_dags)
    app = FastAPI(title="pach_airflow", description=__doc__, dependencies=[Depends(auth.current_user)],
                  docs_url=None, redoc_url=None, openapi_url=None)  # unprotected routes otherwise
    app.state.ui = ui
    _install_error_handlers(app, ui)

    # -- JSON API ------------------------------------------------------------------------------------
    @app.get("/api/repos")
    def api_repos() -> list[dict[str, Any]]:
        return data.list_repos(ui.store())

    @app.get("/api/repos/{repo}")
    def api_repo(repo: str, branch: str | None = None, limit: int = data.MAX_COMMITS) -> dict[str, Any]:
        return data.inspect_repo(ui.store(), repo, branch, limit)

    @app.get("/api/repos/{repo}/commits")
    def api_commits(repo: str, branch: str | None = None, limit: int = data.MAX_COMMITS) -> list[dict[str, Any]]:
        return data.inspect_repo(ui.store(), repo, branch, limit)["commits"]

    @app.get("/api/commits/{repo}/{ref}")
    def api_commit(repo: str, ref: str, request: Request) -> dict[str, Any]:
        c = data.inspect_commit(ui.store(), repo, ref)
        c["dag_run"] = _run_of(c.get("job"))
        return c

    @app.get("/api/pipelines")
    def api_pipelines() -> list[dict[str, Any]]:
        return data.list_pipelines(ui.store(), ui.dag_specs())

    @app.get("/api/pipelines/{name}")
    def api_pipeline(name: str, request: Request) -> dict[str, Any]:
        auth.authorize_dag(request, name)
        return data.inspect_pipeline(ui.store(), name, ui.dag_specs())

    @app.get("/api/jobs")
    def api_jobs(request: Request, pipeline: str | None = None, limit: int = data.MAX_COMMITS) -> list[dict]:
        if pipeline:
            auth.authorize_dag(request, pipeline)
        return data.list_jobs(ui.store(), pipeline, limit=limit)

    @app.get("/api/jobs/{pipeline}/{job_id}")
    def api_job(pipeline: str, job_id: str, request: Request) -> dict[str, Any]:
        auth.authorize_dag(request, pipeline)
        job = data.inspect_job(ui.store(), pipeline, job_id)
        job["dag_run"] = _run_of(job)
        job["datum_counts"] = data.datum_counts(job["datums"])
        return job

    @app.get("/api/jobs/{pipeline}/{job_id}/datums")
    def api_datums(pipeline: str, job_id: str, request: Request) -> list[dict[str, Any]]:
        auth.authorize_dag(request, pipeline)
        return data.inspect_job(ui.store(), pipeline, job_id)["datums"]

    @app.get("/api/runs/{dag_id}/{run_id}")
    def api_run(dag_id: str, run_id: str, request: Request) -> dict[str, Any]:
        auth.authorize_dag(request, dag_id)
        job_id = runs.job_for_run(ui.store(), dag_id, run_id)
        if job_id is None:
            raise NotFound(f"no job recorded for DAG run {dag_id}/{run_id}: the run has not planned a job yet, "
                           "or the DAG is not a pach_airflow pipeline")
        return {"dag_id": dag_id, "run_id": run_id, "pipeline": dag_id, "job_id": job_id,
                "output_commit": {"repo": dag_id, "id": job_id}}

    @app.get("/files/{repo}/{ref}/{path:path}", response_model=None)
    def file_content(repo: str, ref: str, path: str) -> Response:
        """One file of a commit. Repo data is anyone's upload shown inside Airflow's origin, so only
        images and plain text are shown inline; everything else downloads, and nothing may run."""
        store = ui.store()
        info = data.as_dict(store.inspect_file(repo, ref, "/" + path))
        if info.get("type") != "file":
            raise InvalidPath(f"{repo}@{ref}:/{path} is a directory: open its commit page to see its files")
        media_type, inline = data.file_media_type(path)
        name = quote(path.rsplit("/", 1)[-1])
        headers = {
            "Content-Disposition": f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{name}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
            "Cache-Control": "private, max-age=3600",  # a commit's file never changes; a branch's may
        }
        if len(ref) != 32:
            headers["Cache-Control"] = "private, no-cache"
        body = store.open_file(repo, ref, "/" + path)
        return StreamingResponse(_chunks(body), media_type=media_type, headers=headers)

    @app.get("/jobs/{pipeline}/{job_id}/logs/{datum_id}", response_class=PlainTextResponse)
    def datum_log(pipeline: str, job_id: str, datum_id: str, request: Request) -> PlainTextResponse:
        """The whole log of one datum of a job (the job page shows its tail)."""
        from pach_airflow import jobs

        auth.authorize_dag(request, pipeline)
        logs = list(jobs.job_logs(ui.store(), pipeline, job_id, datum_id=datum_id))
        if not logs:
            raise NotFound(f"no log of datum {datum_id} in job {pipeline}@{job_id}: it was skipped "
                           "(see the job that processed it) or has not run yet")
        return PlainTextResponse("".join(entry["log"] for entry in logs),
                                 headers={"X-Content-Type-Options": "nosniff"})

    @app.get("/api/lineage", response_model=None)
    def api_lineage(request: Request, format: str = "json") -> Any:
        g = data.lineage(ui.store(), ui.dag_specs())
        if format == "svg":
            return Response(lin.render_svg(g), media_type="image/svg+xml")
        return g.to_dict()

    # -- pages ---------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def page_index(request: Request) -> HTMLResponse:
        store = ui.store()
        root, _ = ui.roots(request)
        g = data.lineage(store, ui.dag_specs(), href=_href(root))
        return ui.page(request, "index.html", title="Pachyderm repos", repos=data.list_repos(store),
                       pipelines=data.list_pipelines(store, ui.dag_specs()), svg=lin.render_svg(g))

    @app.get("/repos/{repo}", response_class=HTMLResponse)
    def page_repo(repo: str, request: Request, branch: str | None = None,
                  limit: int = data.MAX_COMMITS) -> HTMLResponse:
        r = data.inspect_repo(ui.store(), repo, branch, limit)
        return ui.page(request, "repo.html", title=f"Repo {repo}", repo=r, limit=limit)

    @app.get("/commits/{repo}/{ref}", response_class=HTMLResponse)
    def page_commit(repo: str, ref: str, request: Request) -> HTMLResponse:
        c = data.inspect_commit(ui.store(), repo, ref)
        return ui.page(request, "commit.html", title=f"Commit {repo}@{c['id'][:12]}", commit=c,
                       dag_run=_run_of(c.get("job")))

    @app.get("/pipelines/{name}", response_class=HTMLResponse)
    def page_pipeline(name: str, request: Request) -> HTMLResponse:
        auth.authorize_dag(request, name)
        store = ui.store()
        try:
            p = data.inspect_pipeline(store, name, ui.dag_specs())
        except NotFound:
            return ui.page(request, "message.html", 404, title=f"{name}: not a pipeline",
                           message=f"DAG {name!r} is not a pach_airflow pipeline, or its pipeline has not been "
                                   "created in the store yet (it is, the first time its DAG runs).")
        root, _ = ui.roots(request)
        g = lin.neighbourhood(data.lineage(store, ui.dag_specs(), href=_href(root)),
                              lin.node_id(lin.PIPELINE, name))
        for j in p["jobs"]:
            j["dag_run"] = _run_of(j)
        return ui.page(request, "pipeline.html", title=f"Pipeline {name}", pipeline=p,
                       svg=lin.render_svg(g, highlight=lin.node_id(lin.PIPELINE, name)))

    @app.get("/jobs", response_class=HTMLResponse)
    def page_jobs(request: Request, pipeline: str | None = None, limit: int = data.MAX_COMMITS) -> HTMLResponse:
        if pipeline:
            auth.authorize_dag(request, pipeline)
        jobs_ = data.list_jobs(ui.store(), pipeline, limit=limit)
        for j in jobs_:
            j["dag_run"] = _run_of(j)
        return ui.page(request, "jobs.html", title="Jobs" + (f" of {pipeline}" if pipeline else ""),
                       jobs=jobs_, pipeline=pipeline, limit=limit,
                       refresh=5 if any(_refresh(j) for j in jobs_) else None)

    @app.get("/jobs/{pipeline}/{job_id}", response_class=HTMLResponse)
    def page_job(pipeline: str, job_id: str, request: Request) -> HTMLResponse:
        auth.authorize_dag(request, pipeline)
        job = data.inspect_job(ui.store(), pipeline, job_id)
        return ui.page(request, "job.html", title=f"Job {pipeline}@{job_id[:12]}", job=job,
                       counts=data.datum_counts(job["datums"]), dag_run=_run_of(job), refresh=_refresh(job))

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse)
    def page_run(dag_id: str, run_id: str, request: Request) -> Response:
        auth.authorize_dag(request, dag_id)
        job_id = runs.job_for_run(ui.store(), dag_id, run_id)
        if job_id is None:
            return ui.page(request, "message.html", 404, title="No output commit yet",
                           message=f"DAG run {run_id} of {dag_id} has no pach_airflow job recorded: it has not "
                                   "planned its job yet, or this DAG is not a pach_airflow pipeline.")
        root, _ = ui.roots(request)
        return RedirectResponse(f"{root}/jobs/{quote(dag_id, safe='')}/{job_id}", status_code=303)

    @app.get("/runs/{dag_id}/{run_id}/tasks/{task_id}/{map_index}", response_class=HTMLResponse)
    def page_task(dag_id: str, run_id: str, task_id: str, map_index: str, request: Request) -> Response:
        """A task instance's "Datums" tab: for a mapped ``process`` task, the datums of its datum set
        (set id = map index) with their states and logs; for the other tasks, the run's job."""
        auth.authorize_dag(request, dag_id)
        store = ui.store()
        job_id = runs.job_for_run(store, dag_id, run_id)
        if job_id is None:
            return ui.page(request, "message.html", 404, title="No datums",
                           message=f"DAG run {run_id} of {dag_id} has no pach_airflow job recorded: it has not "
                                   "planned its job yet, or this DAG is not a pach_airflow pipeline.")
        root, _ = ui.roots(request)
        if task_id != "process" or not map_index.isdigit():
            return RedirectResponse(f"{root}/jobs/{quote(dag_id, safe='')}/{job_id}", status_code=303)
        job = data.inspect_job(store, dag_id, job_id)
        total = len(job["datums"])
        job["datums"] = [d for d in job["datums"] if d.get("set") == map_index]
        return ui.page(request, "job.html", title=f"Datums of process [{map_index}]", job=job,
                       counts=data.datum_counts(job["datums"]), dag_run=_run_of(job),
                       only_set=map_index, total=total, refresh=_refresh(job))

    @app.get("/lineage", response_class=HTMLResponse)
    def page_lineage(request: Request) -> HTMLResponse:
        root, _ = ui.roots(request)
        g = data.lineage(ui.store(), ui.dag_specs(), href=_href(root))
        return ui.page(request, "lineage.html", title="Lineage", svg=lin.render_svg(g), graph=g.to_dict())

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, f"no static file {name!r}")
        return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                        headers={"Cache-Control": "private, max-age=300"})

    return app


def _chunks(fh: Any, size: int = 1 << 16) -> Any:
    with fh:
        while chunk := fh.read(size):
            yield chunk


def _href(root: str) -> Callable[[str, str], str]:
    def href(kind: str, name: str) -> str:
        return f"{root}/{'pipelines' if kind == lin.PIPELINE else 'repos'}/{quote(name, safe='')}"
    return href


def _refresh(job: dict[str, Any]) -> int | None:
    """Seconds after which a page about a job still running reloads itself; ``None`` once it ended."""
    from pach_airflow.jobs import TERMINAL_STATES

    return None if job.get("state") in TERMINAL_STATES else 5


def _run_of(job: dict[str, Any] | None) -> dict[str, str] | None:
    if not job:
        return None
    found = runs.run_for_job(job)
    return {"dag_id": found[0], "run_id": found[1]} if found else None


def _install_error_handlers(app: FastAPI, ui: Ui) -> None:
    def wants_json(request: Request) -> bool:
        path, root = request.url.path, request.scope.get("root_path", "")
        rel = path[len(root):] if root and path.startswith(root) else path
        return rel.startswith("/api/") or "text/html" not in request.headers.get("accept", "")

    @app.exception_handler(auth.LoginRequired)
    async def login_required(request: Request, exc: auth.LoginRequired) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                                headers={"WWW-Authenticate": "Bearer"})
        try:
            target = await run_in_threadpool(auth.login_url, request.url.path)
        except HTTPException as e:
            return JSONResponse({"detail": e.detail}, status_code=e.status_code)
        return RedirectResponse(target, status_code=303)

    def store_error(code: int) -> Callable:
        async def handler(request: Request, exc: PachAirflowError) -> Response:
            if wants_json(request):
                return JSONResponse({"detail": str(exc)}, status_code=code)
            return ui.page(request, "message.html", code, title="Not found" if code == 404 else "Error",
                           message=str(exc))
        return handler

    app.add_exception_handler(NotFound, store_error(404))
    app.add_exception_handler(InvalidName, store_error(400))
    app.add_exception_handler(InvalidPath, store_error(400))
    app.add_exception_handler(PachAirflowError, store_error(500))
