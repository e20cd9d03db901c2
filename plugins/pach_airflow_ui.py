"""Airflow plugin: the pach_airflow UI (repos, commits, provenance, jobs, datums, lineage) in Airflow's UI.

Mounts :func:`pach_airflow.ui.app.create_app` in Airflow's API server under ``/pach`` and adds views:

- "Pachyderm repos" in the navigation bar (``/plugin/pach`` shows ``/pach/`` inside the Airflow UI);
- a "Pachyderm" tab on each DAG: the pipeline, its jobs and lineage;
- an "Output commit" tab on each DAG run: the job the run ran, its datums and output commit;
- a "Datums" tab on each task instance: for a mapped ``process`` task, the datums of its datum set.

Airflow 3.3 serves plugin apps without authentication; the app checks Airflow's login itself on every
route (``pach_airflow.ui.auth``). Importing this file is cheap: FastAPI is already loaded wherever plugins
are, and nothing here touches the store.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from pach_airflow.ui.app import create_app

URL_PREFIX = "/pach"


class PachAirflowUiPlugin(AirflowPlugin):
    name = "pach_airflow_ui"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [{"app": create_app(url_prefix=URL_PREFIX), "url_prefix": URL_PREFIX,
                     "name": "pach_airflow UI"}]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {"name": "Pachyderm repos", "href": f"{URL_PREFIX}/", "destination": "nav", "url_route": "pach",
         "icon": f"{URL_PREFIX}/static/icon.svg"},
        {"name": "Pachyderm", "href": f"{URL_PREFIX}/pipelines/{{DAG_ID}}", "destination": "dag",
         "url_route": "pach-pipeline"},
        {"name": "Output commit", "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}", "destination": "dag_run",
         "url_route": "pach-run"},
        {"name": "Datums", "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}/tasks/{{TASK_ID}}/{{MAP_INDEX}}",
         "destination": "task_instance", "url_route": "pach-datums"},
    ]
