"""Links between a job (= its output commit) and the Airflow DAG run that ran it.

A pipeline's DAG id is the pipeline's name. The run that made a job is found, in this order:

1. in the job record, if the DAG's tasks recorded it (``dag_run: {dag_id, run_id}``, or ``run_id``);
2. in the run's XComs: a task of the run (``plan`` / ``finish``) returned or pushed the job id, so the
   XCom values of the run are searched for a 32-hex id that is a job of that pipeline.

Both directions work from either source. The XCom look-up reads Airflow's metadata database, which the
API server that serves this app has; anywhere else it quietly finds nothing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pach_airflow.ui import data

log = logging.getLogger(__name__)

_JOB_ID = re.compile(r"\b[0-9a-f]{32}\b")
MAX_XCOM_ROWS = 200


def recorded_run(job: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(dag_id, run_id)`` the job record names, if any."""
    pipeline = str(job.get("pipeline") or "")
    for key in ("dag_run", "airflow"):
        v = job.get(key)
        if isinstance(v, Mapping) and v.get("run_id"):
            return str(v.get("dag_id") or pipeline), str(v["run_id"])
    if job.get("run_id"):
        return str(job.get("dag_id") or pipeline), str(job["run_id"])
    return None


def run_for_job(job: Mapping[str, Any]) -> tuple[str, str] | None:
    """The DAG run that ran ``job`` (a job summary with ``pipeline`` and ``id``), or ``None``."""
    found = recorded_run(job)
    if found:
        return found
    pipeline, job_id = str(job.get("pipeline") or ""), str(job.get("id") or "")
    if not pipeline or not _JOB_ID.fullmatch(job_id):
        return None
    rows = _xcom_rows(pipeline, None, like=job_id)
    return (pipeline, rows[0][0]) if rows else None


def job_for_run(store: Any, dag_id: str, run_id: str) -> str | None:
    """The id of the job that the DAG run ``dag_id``/``run_id`` ran, or ``None``."""
    for job in data.list_jobs(store, dag_id, limit=data.MAX_COMMITS):
        if recorded_run(job) == (dag_id, run_id):
            return str(job["id"])
    seen: set[str] = set()
    for _run, value in _xcom_rows(dag_id, run_id):
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        for candidate in _JOB_ID.findall(text):
            if candidate not in seen:
                seen.add(candidate)
                if data.job_record(store, dag_id, candidate) is not None:
                    return candidate
    return None


def _xcom_rows(dag_id: str, run_id: str | None, *, like: str | None = None) -> list[tuple[str, Any]]:
    """``(run_id, value)`` of the DAG's XComs, the ``plan`` task's ``job_id`` first, newest first.

    Reads Airflow's metadata database; where there is none (outside the API server) it finds nothing
    rather than failing the page.
    """
    try:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import String, case, cast, select

        q = select(XComModel.run_id, XComModel.value).where(XComModel.dag_id == dag_id)
        if run_id is not None:
            q = q.where(XComModel.run_id == run_id)
        if like is not None:
            q = q.where(cast(XComModel.value, String).like(f"%{like}%"))
        q = q.order_by(case((XComModel.key == "job_id", 0), else_=1), XComModel.timestamp.desc())
        with create_session() as session:
            return [(r, v) for r, v in session.execute(q.limit(MAX_XCOM_ROWS)).all()]
    except (ImportError, RuntimeError, OSError) as exc:
        log.debug("no XCom look-up for %s/%s: %s", dag_id, run_id, exc)
        return []
    except Exception as exc:  # noqa: BLE001 - a database error must not turn a page into a 500
        log.warning("XCom look-up for %s/%s failed: %s", dag_id, run_id, exc)
        return []


def dag_run_path(dag_id: str, run_id: str) -> str:
    """The Airflow UI's path of a DAG run (relative to Airflow's base URL)."""
    return f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def dag_path(dag_id: str) -> str:
    return f"/dags/{quote(dag_id, safe='')}"


def task_path(dag_id: str, run_id: str, task_id: str, map_index: int | None = None) -> str:
    p = f"{dag_run_path(dag_id, run_id)}/tasks/{quote(task_id, safe='')}"
    return p if map_index is None or map_index < 0 else f"{p}/mapped/{map_index}"
